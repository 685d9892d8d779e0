import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyStderrLine, earlyExitReason, fallbackNotice, firstErrorLine, unusableMessage } from '../../vm-host/acceleratorFallback';
import { BOOT_TIMEOUT_FACTOR, bootTimeoutMs, FIRST_BOOT_TIMEOUT_MS, MIN_BOOT_TIMEOUT_MS } from '../../vm-host/bootTimes';
import { pickAccelerator, availableAccelerators, probeAccelerators } from '../../vm-host/drivers/accelerator';
import { exitReason } from '../../vm-host/vm';
import type { MachineConfig } from '../../vm-host/drivers/driver';
import { escapeOpt, kernelCmdline, qemuArgv, TCG_TB_SIZE_MIB } from '../../vm-host/drivers/qemu';

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

  it("opens exactly the two egress forwards, each to this VM's socket through socat, quoted and escaped", () => {
    const net = optionAfter(qemuArgv({ ...config, egress: { socat: "/opt/it's,socat", http: '/t/a-1.http', socks: '/t/b.socks' } }), '-netdev');
    assert.deepEqual(net, [
      'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22' +
        ",guestfwd=tcp:10.0.2.100:3128-cmd:'/opt/it'\\''s,,socat' -b 262144 -lf /dev/null - 'UNIX-CONNECT:/t/a-1.http'" +
        ",guestfwd=tcp:10.0.2.100:1080-cmd:'/opt/it'\\''s,,socat' -b 262144 -lf /dev/null - 'UNIX-CONNECT:/t/b.socks'",
    ]);
  });

  it('refuses a socket path socat would misread in its address (, : quotes), instead of egress that silently fails', () => {
    for (const bad of ["/t/it's.http", '/t/a,b.http', '/t/a:b.http', '/t/a b.http']) {
      assert.throws(() => qemuArgv({ ...config, egress: { socat: 'socat', http: bad, socks: '/t/b.socks' } }), /characters socat cannot take/, bad);
    }
  });

  it('shares the workspace read-only (in both workspace modes), escaping commas', () => {
    assert.deepEqual(optionAfter(qemuArgv(config), '-fsdev'), ['local,id=ws,path=/home/me/my,,project,security_model=none,readonly=on']);
  });

  it('uses the accelerator asked for, with the host CPU only under hardware acceleration', () => {
    const tcg = qemuArgv(config);
    assert.deepEqual(optionAfter(tcg, '-accel'), [`tcg,thread=multi,tb-size=${TCG_TB_SIZE_MIB}`]);
    assert.deepEqual(optionAfter(tcg, '-cpu'), ['max']);
    const kvm = qemuArgv({ ...config, accelerator: 'kvm' });
    assert.deepEqual(optionAfter(kvm, '-accel'), ['kvm']);
    assert.deepEqual(optionAfter(kvm, '-cpu'), ['host']);
  });

  it('caps TCG\'s translation cache (QEMU keeps every page of it it touched: most of its idle RSS), and only under TCG', () => {
    const accel = optionAfter(qemuArgv(config), '-accel')[0]!;
    const size = Number(/tb-size=(\d+)/.exec(accel)?.[1]);
    assert.ok(size >= 32 && size <= 128, `tb-size ${size} MiB: small enough for the idle RSS goal, large enough for the guest's hot code`);
    assert.doesNotMatch(optionAfter(qemuArgv({ ...config, accelerator: 'kvm' }), '-accel')[0]!, /tb-size/);
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

// What QEMU 7.2 prints on a host whose /dev/kvm cannot run it (shared/TESTING.md), before SIGABRT.
const MSR_ABORT = [
  'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000c04',
  "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3050: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
  '',
].join('\n');

describe('hardware accelerator fallback decision', () => {
  it('counts error lines, not warnings, our own stop, or a port clash', () => {
    assert.equal(classifyStderrLine("qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]"), 'ignore');
    assert.equal(classifyStderrLine('qemu-system-x86_64: terminating on signal 15 from pid 12'), 'ignore');
    assert.equal(classifyStderrLine('  '), 'ignore');
    assert.equal(classifyStderrLine('qemu-system-x86_64: -netdev user,id=net0,hostfwd=tcp:127.0.0.1:4022-:22: Could not set up host forwarding rule \'tcp:127.0.0.1:4022-:22\''), 'port-in-use');
    assert.equal(classifyStderrLine('Could not access KVM kernel module: No such file or directory'), 'error');
    assert.equal(classifyStderrLine('qemu-system-x86_64: failed to initialize kvm: Permission denied'), 'error');
    assert.equal(classifyStderrLine('KVM_SET_USER_MEMORY_REGION failed: Invalid argument'), 'error');
  });

  it('names the first error line of an abort, without the program prefix, and how QEMU ended', () => {
    assert.equal(firstErrorLine('qemu-system-x86_64: warning: x\n' + MSR_ABORT), 'error: failed to set MSR 0x10a to 0x2000c04');
    assert.equal(earlyExitReason({ code: null, signal: 'SIGABRT', stderr: MSR_ABORT }), 'error: failed to set MSR 0x10a to 0x2000c04 (QEMU was killed by SIGABRT)');
    assert.equal(earlyExitReason({ code: 1, signal: null, stderr: '' }), 'QEMU exited with code 1');
    assert.equal(earlyExitReason({ code: 0, signal: null, stderr: 'qemu-system-x86_64: warning: only this\n' }), 'QEMU exited with code 0');
  });

  it('says why in one line, for auto (a notice) and for an explicit kvm (an error that points to auto)', () => {
    const reason = firstErrorLine(MSR_ABORT)!;
    assert.equal(fallbackNotice('kvm', reason), 'KVM is present but QEMU could not use it: error: failed to set MSR 0x10a to 0x2000c04 — running emulated, slower');
    assert.doesNotMatch(fallbackNotice('kvm', 'a\nb'), /\n/);
    assert.match(unusableMessage('kvm', reason), /^KVM is present but QEMU could not use it: error: failed to set MSR 0x10a.*"auto".*Check Setup/);
  });

  it('reports why a running VM went away: panic, OOM kill, signal, or power-off', () => {
    assert.equal(exitReason(0, null, ['x', '[   12.3] Kernel panic - not syncing: sysrq triggered crash'], ''), 'the guest kernel panicked (Kernel panic - not syncing: sysrq triggered crash)');
    assert.equal(exitReason(null, 'SIGKILL', [], ''), 'QEMU was killed by SIGKILL');
    assert.equal(exitReason(1, null, [], 'qemu-system-x86_64: warning: w\nqemu: block I/O error\n'), 'QEMU exited with code 1: qemu: block I/O error');
    assert.equal(exitReason(0, null, ['reboot: Power down'], ''), 'the guest powered off');
  });

  it('the test-only probe override pretends KVM is usable (COWORK_TEST_FAKE_KVM=1), and only then', async () => {
    const fake = await probeAccelerators('/bin/false', { COWORK_TEST_FAKE_KVM: '1' });
    if (process.platform === 'linux') {
      assert.equal(fake.kvmUsable, true);
      assert.equal(pickAccelerator('auto', { ...fake, qemuAccels: [...fake.qemuAccels, 'tcg'] }), 'kvm');
    }
    const real = await probeAccelerators('/bin/false', {});
    assert.deepEqual(real.qemuAccels, [], 'a QEMU that does not run offers nothing');
  });
});

describe('boot time-out relative to this host', () => {
  it('allows a generous first boot, then a multiple of the last measured one, never below a floor', () => {
    assert.equal(bootTimeoutMs('tcg', undefined), FIRST_BOOT_TIMEOUT_MS.tcg);
    assert.equal(bootTimeoutMs('kvm', undefined), FIRST_BOOT_TIMEOUT_MS.hardware);
    assert.equal(bootTimeoutMs('tcg', 5_000), MIN_BOOT_TIMEOUT_MS.tcg, 'a fast host still gets the floor');
    assert.equal(bootTimeoutMs('tcg', 40_000), BOOT_TIMEOUT_FACTOR * 40_000, 'a slow host gets more time than any fixed 60 s');
    assert.ok(bootTimeoutMs('tcg', 40_000) > 60_000);
    assert.equal(bootTimeoutMs('kvm', 1_000), MIN_BOOT_TIMEOUT_MS.hardware);
    assert.equal(bootTimeoutMs('tcg', Number.NaN), FIRST_BOOT_TIMEOUT_MS.tcg);
  });
});
