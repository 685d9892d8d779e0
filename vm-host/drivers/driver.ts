// What a hypervisor driver must offer. Callers branch on capabilities, not on the driver's name
// (after Lima's pkg/driver), so Virtualization.framework or Firecracker can join later.
import type { ResolvedAccelerator } from '../../extension/protocol/vmHost';

export interface DriverCapabilities {
  /** host↔guest stream without a NIC (vhost-vsock, VZ) */
  readonly vsock: boolean;
  /** virtiofs share instead of 9p */
  readonly virtiofs: boolean;
  readonly snapshots: boolean;
}

export interface MachineConfig {
  readonly qemuBinary: string;
  readonly accelerator: ResolvedAccelerator;
  readonly cpus: number;
  readonly memoryMiB: number;
  readonly kernel: string;
  readonly kernelFormat: 'pvh' | 'bzimage';
  readonly initrd: string;
  readonly rootfs: string;
  readonly sessionDisk: string;
  /** the workspace's package-cache disk (qcow2), when attached */
  readonly cacheDisk?: string;
  readonly workspace: string;
  readonly sshPort: number;
  /**
   * The guest's egress: socat (its path) and this VM's two host sockets, reached from the guest's
   * 10.0.2.100:3128 (HTTP proxy) and :1080 (SOCKS5) through slirp's guestfwd (extension/egress/hostSockets.ts)
   */
  readonly egress?: { readonly socat: string; readonly http: string; readonly socks: string };
  /** fw_cfg blobs: name under opt/cowork/ → host file */
  readonly fwCfgFiles: Readonly<Record<string, string>>;
  /** appended to the kernel command line (the benchmark's bare boot uses "cowork.bare") */
  readonly extraCmdline?: string;
}

export interface VmDriver {
  readonly name: string;
  readonly capabilities: DriverCapabilities;
  argv(config: MachineConfig): string[];
}
