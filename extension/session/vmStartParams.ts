// What a task's VM is booted with, built in one place for a cold start (workspaceVm.ts) and for the
// warm VM (warmVm.ts), and the comparison that decides whether a warm VM fits a task: everything
// fixed at boot (resources, accelerator, guest layer, workspace share, package cache, and the extra
// CA certificates its sandbox was started with) must be what the task would have booted with, else
// the task boots as usual.
import { loadExtraCa, type ExtraCa } from '../config/extraCa';
import { vmResources, type Settings } from '../config/settings';
import type { GuestLayerSpec, VmStartParams } from '../protocol/vmHost';

export interface VmPlace {
  readonly vmId: string;
  readonly workspace: string;
  readonly sessionDisk: string;
  readonly cacheDisk?: string;
}

/** What the helper boots, plus what the extension installs in the guest before the task's sandbox starts. */
export type TaskVmParams = VmStartParams & {
  /** cowork.network.extraCaCertificates, read from the host files now (guest/sandbox.ts installExtraCa) */
  readonly extraCa?: ExtraCa;
};

/** Throws when a file of cowork.network.extraCaCertificates is bad, before anything boots. */
export function vmStartParams(place: VmPlace, settings: Settings, guestLayer: GuestLayerSpec | undefined): TaskVmParams {
  const extraCa = loadExtraCa(settings['network.extraCaCertificates']);
  return {
    vmId: place.vmId,
    workspace: place.workspace,
    sessionDisk: place.sessionDisk,
    accelerator: settings['vm.accelerator'],
    ...vmResources(settings),
    ...(guestLayer ? { guestLayer } : {}),
    ...(place.cacheDisk ? { cacheDisk: place.cacheDisk } : {}),
    ...(extraCa ? { extraCa } : {}),
  };
}

/** The part the helper is asked to boot (the certificates stay with the extension). */
export function helperStartParams(p: TaskVmParams): VmStartParams {
  const { extraCa: _ca, ...rest } = p;
  return rest;
}

/** The parts of a start that shape the VM (not its name or session disk), comparable as JSON. */
function bootShape(p: TaskVmParams): Record<string, unknown> {
  return {
    workspace: p.workspace,
    cpus: p.cpus,
    memoryMiB: p.memoryMiB,
    diskGiB: p.diskGiB,
    accelerator: p.accelerator,
    guestLayer: p.guestLayer ? { packages: [...p.guestLayer.packages].sort(), setup: p.guestLayer.setup ?? '' } : null,
    cacheDisk: p.cacheDisk ?? null,
    cacheDiskGiB: p.cacheDiskGiB ?? null,
    extraCaCertificates: p.extraCa ? `${p.extraCa.count} certificates, sha256 ${p.extraCa.sha256.slice(0, 12)}` : null,
  };
}

/** The first setting in which `booted` differs from what the task wants ("memoryMiB 1024 → 2048"), or undefined. */
export function bootShapeDifference(booted: TaskVmParams, wanted: TaskVmParams): string | undefined {
  const a = bootShape(booted);
  const b = bootShape(wanted);
  for (const key of Object.keys(b)) {
    const [x, y] = [JSON.stringify(a[key]), JSON.stringify(b[key])];
    if (x !== y) return `${key} ${x} → ${y}`;
  }
  return undefined;
}
