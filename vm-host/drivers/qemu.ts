// QEMU as the baseline driver on every OS. `qemuArgv` is a pure config → argv function so it can
// be tested without starting anything.
import { EGRESS_GUEST, socatSafePath } from '../../extension/egress/hostSockets';
import type { DriverCapabilities, MachineConfig, VmDriver } from './driver';

export const QEMU_CAPABILITIES: DriverCapabilities = { vsock: false, virtiofs: false, snapshots: false };

export function kernelCmdline(config: Pick<MachineConfig, 'accelerator' | 'extraCmdline'>): string {
  const parts = ['console=ttyS0', 'quiet', 'loglevel=3', 'panic=-1', 'rootwait', 'random.trust_cpu=on', 'tsc=reliable', 'no_timer_check'];
  // Under TCG the guest's code never runs speculatively on the host CPU, so in-guest Spectre
  // mitigations buy nothing and halve process-spawn speed. With a real accelerator they stay on.
  if (config.accelerator === 'tcg') parts.push('mitigations=off');
  if (config.extraCmdline) parts.push(config.extraCmdline);
  return parts.join(' ');
}

/**
 * TCG's translation cache, in MiB. QEMU 7.2 reserves 1 GiB on a 64-bit host and keeps every page
 * of it that translated code ever touched: after a boot, 100 commands and a 5,000-file read that
 * was ~400 MiB of QEMU's ~780 MiB idle RSS (issue 14, docs/benchmarks.md). When the cache is full
 * QEMU flushes it and translates again, so a smaller one costs speed only once the guest's hot code
 * no longer fits: measured here, 64 MiB ran the boot, the commands and the read as fast as the
 * default (RSS ~390 MiB); 32 MiB was ~15 % slower at boot. Hardware accelerators have no such cache.
 */
export const TCG_TB_SIZE_MIB = 64;

export function qemuArgv(c: MachineConfig): string[] {
  const hw = c.accelerator !== 'tcg';
  const argv = [
    '-name', 'cowork,debug-threads=on',
    '-nodefaults', '-no-user-config', '-nographic',
    '-machine', 'q35',
    '-accel', c.accelerator === 'tcg' ? `tcg,thread=multi,tb-size=${TCG_TB_SIZE_MIB}` : c.accelerator,
    '-cpu', hw ? 'host' : 'max',
    '-smp', String(c.cpus),
    '-m', `${c.memoryMiB}M`,
    '-kernel', c.kernel,
    '-initrd', c.initrd,
    '-append', kernelCmdline(c),
    '-serial', 'stdio',
    '-monitor', 'none',
    '-no-reboot',
    '-drive', `file=${escapeOpt(c.rootfs)},format=raw,if=none,id=root,readonly=on,cache=unsafe`,
    '-device', 'virtio-blk-pci,drive=root',
    '-drive', `file=${escapeOpt(c.sessionDisk)},format=qcow2,if=none,id=session,cache=writeback,discard=unmap`,
    '-device', 'virtio-blk-pci,drive=session',
    // the workspace's package-cache disk, /dev/vdc in the guest (vm-host/cacheDisk.ts)
    ...(c.cacheDisk ? ['-drive', `file=${escapeOpt(c.cacheDisk)},format=qcow2,if=none,id=cache,cache=writeback,discard=unmap`, '-device', 'virtio-blk-pci,drive=cache'] : []),
    '-fsdev', `local,id=ws,path=${escapeOpt(c.workspace)},security_model=none,readonly=on`, // read-only in both workspace modes (extension/changes/direct.ts)
    '-device', 'virtio-9p-pci,fsdev=ws,mount_tag=workspace',
    // restrict=on: the guest can open no connection out but the two guestfwd ones (the egress
    // proxy, extension/egress/hostSockets.ts); only the forwarded sshd port comes in.
    '-netdev', `user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:${c.sshPort}-:22${egressForwards(c)}`,
    '-device', 'virtio-net-pci,netdev=net0,romfile=',
    '-device', 'virtio-rng-pci',
  ];
  for (const [name, file] of Object.entries(c.fwCfgFiles)) argv.push('-fw_cfg', `name=opt/cowork/${name},file=${escapeOpt(file)}`);
  return argv;
}

/**
 * slirp's guestfwd with `cmd:`: for each connection the guest opens to 10.0.2.100:<port>, QEMU
 * starts the command (split like a shell would, no shell run) with the connection as its stdin,
 * stdout and stderr; socat carries it to this VM's socket of the host proxy. socat logs to
 * /dev/null (its stderr is the guest's connection) and moves up to 256 KiB per read (8 KiB by default).
 */
function egressForwards(c: MachineConfig): string {
  if (!c.egress) return '';
  for (const p of [c.egress.http, c.egress.socks]) {
    // socat reads , : quotes, backslashes and brackets in its address as syntax (egressSocketBase avoids such folders)
    if (!socatSafePath(p)) throw new Error(`The egress socket path ${p} has characters socat cannot take in an address; set TMPDIR or XDG_RUNTIME_DIR to a plain folder`);
  }
  const fwd = (port: number, socket: string): string =>
    `,guestfwd=tcp:${EGRESS_GUEST.address}:${port}-cmd:${escapeOpt(`${shellQuote(c.egress!.socat)} -b 262144 -lf /dev/null - ${shellQuote(`UNIX-CONNECT:${socket}`)}`)}`;
  return fwd(EGRESS_GUEST.httpPort, c.egress.http) + fwd(EGRESS_GUEST.socksPort, c.egress.socks);
}

/** One argument quoted for g_shell_parse_argv (POSIX shell rules: single quotes, ' as '\''). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/** QEMU option values escape ',' by doubling it. */
export function escapeOpt(value: string): string {
  return value.replace(/,/g, ',,');
}

export const qemuDriver: VmDriver = { name: 'qemu', capabilities: QEMU_CAPABILITIES, argv: qemuArgv };
