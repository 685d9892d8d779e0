// Host programs the helper needs, with the Debian/Ubuntu package that provides each, so a missing
// one gets an error that says exactly what to install.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import * as path from 'node:path';
import { VmHostError } from './errors';

export interface HostTool {
  readonly command: string;
  readonly aptPackage: string;
  readonly purpose: string;
}

export const IMAGE_BUILD_TOOLS: readonly HostTool[] = [
  { command: 'mmdebstrap', aptPackage: 'mmdebstrap', purpose: 'build the guest root filesystem from Debian packages' },
  { command: 'tar2sqfs', aptPackage: 'squashfs-tools-ng', purpose: 'pack the guest root filesystem' },
  { command: 'cpio', aptPackage: 'cpio', purpose: 'pack the guest initramfs' },
  { command: 'xz', aptPackage: 'xz-utils', purpose: 'unpack the guest kernel for direct boot' },
];

export function qemuTools(qemuBinary: string): HostTool[] {
  const pkg = qemuBinary.endsWith('aarch64') ? 'qemu-system-arm' : 'qemu-system-x86';
  return [
    { command: qemuBinary, aptPackage: pkg, purpose: 'run the guest VM' },
    { command: 'qemu-img', aptPackage: 'qemu-utils', purpose: 'create the session disks' },
  ];
}

/** QEMU starts it for each connection the guest opens to the egress proxy (extension/egress/hostSockets.ts). */
export const EGRESS_TOOL: HostTool = { command: 'socat', aptPackage: 'socat', purpose: "carry the guest's connections to the egress proxy" };

/** The command's path: itself when absolute (COWORK_QEMU_BINARY may be one) and executable, else the first on PATH. */
export async function which(command: string, envPath = process.env.PATH ?? ''): Promise<string | undefined> {
  if (path.isAbsolute(command)) {
    try {
      await access(command, constants.X_OK);
      return command;
    } catch {
      return undefined;
    }
  }
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Resolves every tool to its path, or throws one error naming all that are missing. */
export async function requireTools(tools: readonly HostTool[], envPath?: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const missing: HostTool[] = [];
  for (const tool of tools) {
    const p = await which(tool.command, envPath);
    if (p) found.set(tool.command, p);
    else missing.push(tool);
  }
  if (missing.length > 0) {
    const list = missing.map((t) => `${t.command} (to ${t.purpose})`).join(', ');
    const pkgs = [...new Set(missing.map((t) => t.aptPackage))].join(' ');
    throw new VmHostError('missing-tool', `Missing host tool: ${list}. Install it with: sudo apt-get install ${pkgs}`);
  }
  return found;
}
