import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pickAccelerator, availableAccelerators } from '../../vm-host/drivers/accelerator';
import type { MachineConfig } from '../../vm-host/drivers/driver';
import { escapeOpt, kernelCmdline, qemuArgv } from '../../vm-host/drivers/qemu';

const config: MachineConfig = {
  qemuBinary: 'qemu-system-x86_64',
  accelerator: 'tcg',
  cpus: 2,
  memoryMiB: 1024,
  kernel: '/c/vmlinux',
  kernelFormat: 'pvh',
  initrd: '/c/initrd.img',
  rootfs: '/c/rootfs.squashfs',
  sessionDisk: '/s/a.qcow2',
  workspace: '/home/me/my,project',
  sshPort: 40022,
  fwCfgFiles: { host_key: '/r/host_key' },
};

const optionAfter = (argv: string[], flag: string): string[] => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));

describe('qemu argv', () => {
  it('gives the guest a NIC that cannot connect out and sshd only on host loopback', () => {
    const net = optionAfter(qemuArgv(config), '-netdev');
    assert.deepEqual(net, ['user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22']);
  });

  it('shares the workspace read-only (in both workspace modes), escaping commas', () => {
    assert.deepEqual(optionAfter(qemuArgv(config), '-fsdev'), ['local,id=ws,path=/home/me/my,,project,security_model=none,readonly=on']);
  });

  it('uses the accelerator asked for, with the host CPU only under hardware acceleration', () => {
    const tcg = qemuArgv(config);
    assert.deepEqual(optionAfter(tcg, '-accel'), ['tcg,thread=multi']);
    assert.deepEqual(optionAfter(tcg, '-cpu'), ['max']);
    const kvm = qemuArgv({ ...config, accelerator: 'kvm' });
    assert.deepEqual(optionAfter(kvm, '-accel'), ['kvm']);
    assert.deepEqual(optionAfter(kvm, '-cpu'), ['host']);
  });

  it('turns in-guest mitigations off only under TCG', () => {
    assert.match(kernelCmdline({ accelerator: 'tcg' }), /mitigations=off/);
    assert.doesNotMatch(kernelCmdline({ accelerator: 'kvm' }), /mitigations/);
  });

  it('attaches the root image read-only, the session disk as qcow2, and the keys via fw_cfg', () => {
    const argv = qemuArgv(config);
    const drives = optionAfter(argv, '-drive');
    assert.ok(drives.some((d) => d.startsWith('file=/c/rootfs.squashfs,format=raw') && d.includes('readonly=on')));
    assert.ok(drives.some((d) => d.startsWith('file=/s/a.qcow2,format=qcow2')));
    assert.deepEqual(optionAfter(argv, '-fw_cfg'), ['name=opt/cowork/host_key,file=/r/host_key']);
    assert.equal(escapeOpt('a,b,,c'), 'a,,b,,,,c');
  });
});

describe('accelerator choice', () => {
  const linux = { platform: 'linux' as const, qemuAccels: ['tcg', 'kvm'], kvmUsable: true };
  it('prefers the hardware accelerator of each OS', () => {
    assert.equal(pickAccelerator('auto', linux), 'kvm');
    assert.equal(pickAccelerator('auto', { platform: 'darwin', qemuAccels: ['tcg', 'hvf'], kvmUsable: false }), 'hvf');
    assert.equal(pickAccelerator('auto', { platform: 'win32', qemuAccels: ['tcg', 'whpx'], kvmUsable: false }), 'whpx');
  });
  it('falls back to TCG when /dev/kvm is not usable', () => {
    assert.equal(pickAccelerator('auto', { ...linux, kvmUsable: false }), 'tcg');
    assert.deepEqual(availableAccelerators({ ...linux, kvmUsable: false }), ['tcg']);
  });
  it('refuses an explicit accelerator the host lacks, saying what to do', () => {
    assert.throws(() => pickAccelerator('kvm', { ...linux, kvmUsable: false }), /kvm.*not available.*\/dev\/kvm.*"auto"/s);
    assert.throws(() => pickAccelerator('hvf', linux), /accelerator-unavailable|not available/);
  });
});
