// What a task's VM is booted with, built in one place for a cold start (workspaceVm.ts) and for the
// warm VM (warmVm.ts), and the comparison that decides whether a warm VM fits a task: everything
// fixed at boot (resources, accelerator, guest layer, workspace share, package cache) must be what
// the task would have booted with, else the task boots as usual.
import { vmResources, type Settings } from '../config/settings';
import type { GuestLayerSpec, VmStartParams } from '../protocol/vmHost';

export interface VmPlace {
  readonly vmId: string;
  readonly workspace: string;
  readonly sessionDisk: string;
  readonly cacheDisk?: string;
}

export function vmStartParams(place: VmPlace, settings: Settings, guestLayer: GuestLayerSpec | undefined): VmStartParams {
  return {
    vmId: place.vmId,
    workspace: place.workspace,
    sessionDisk: place.sessionDisk,
    accelerator: settings['vm.accelerator'],
    ...vmResources(settings),
    ...(guestLayer ? { guestLayer } : {}),
    ...(place.cacheDisk ? { cacheDisk: place.cacheDisk } : {}),
  };
}

/** The parts of a start that shape the VM (not its name or session disk), comparable as JSON. */
function bootShape(p: VmStartParams): Record<string, unknown> {
  return {
    workspace: p.workspace,
    cpus: p.cpus,
    memoryMiB: p.memoryMiB,
    diskGiB: p.diskGiB,
    accelerator: p.accelerator,
    guestLayer: p.guestLayer ? { packages: [...p.guestLayer.packages].sort(), setup: p.guestLayer.setup ?? '' } : null,
    cacheDisk: p.cacheDisk ?? null,
    cacheDiskGiB: p.cacheDiskGiB ?? null,
  };
}

/** The first setting in which `booted` differs from what the task wants ("memoryMiB 1024 → 2048"), or undefined. */
export function bootShapeDifference(booted: VmStartParams, wanted: VmStartParams): string | undefined {
  const a = bootShape(booted);
  const b = bootShape(wanted);
  for (const key of Object.keys(b)) {
    const [x, y] = [JSON.stringify(a[key]), JSON.stringify(b[key])];
    if (x !== y) return `${key} ${x} → ${y}`;
  }
  return undefined;
}
