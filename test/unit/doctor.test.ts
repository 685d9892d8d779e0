// Check Setup's pure parts: how a line reads, when the exit code fails, the free-space rule; and
// one real run of the doctor against an empty cache with no tools on PATH (nothing is booted).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { DoctorLine } from '../../extension/protocol/vmHost';
import { AcceleratorVerdicts } from '../../vm-host/acceleratorVerdicts';
import { BootTimes } from '../../vm-host/bootTimes';
import { diskLine, doctorExitCode, formatBytes, formatDoctorLine, MIN_FREE_BYTES, runDoctor } from '../../vm-host/doctor';

const ROOT = path.resolve(__dirname, '..', '..');
const sources = { imageDir: path.join(ROOT, 'vm-host', 'image'), guestDir: path.join(ROOT, 'vm-host', 'guest') };

describe('doctor lines', () => {
  it('reads as one line with ✓, or ✗ with the fix', () => {
    assert.equal(formatDoctorLine({ id: 'qemu', ok: true, required: true, label: 'QEMU', detail: 'QEMU 7.2.22 (/usr/bin/qemu-system-x86_64)' }), '✓ QEMU: QEMU 7.2.22 (/usr/bin/qemu-system-x86_64)');
    assert.equal(
      formatDoctorLine({ id: 'qemu', ok: false, required: true, label: 'QEMU', detail: 'qemu-system-x86_64 not found', fix: 'sudo apt-get install qemu-system-x86' }),
      '✗ QEMU: qemu-system-x86_64 not found — fix: sudo apt-get install qemu-system-x86',
    );
    assert.equal(formatDoctorLine({ id: 'dev-kvm', ok: false, required: false, label: '/dev/kvm', detail: 'missing', fix: 'load kvm' }), '✗ /dev/kvm (optional): missing — fix: load kvm');
    assert.equal(formatDoctorLine({ id: 'x', ok: true, required: true, label: 'x', detail: 'fine', fix: 'never shown on a ✓ line' }), '✓ x: fine');
  });

  it('fails the exit code only for a failed required line', () => {
    const ok: DoctorLine = { id: 'a', ok: true, required: true, label: 'a', detail: '' };
    const optionalBad: DoctorLine = { id: 'b', ok: false, required: false, label: 'b', detail: '' };
    const requiredBad: DoctorLine = { id: 'c', ok: false, required: true, label: 'c', detail: '' };
    assert.equal(doctorExitCode([ok, optionalBad]), 0);
    assert.equal(doctorExitCode([ok, optionalBad, requiredBad]), 1);
  });

  it('asks for free space with a size people can read', () => {
    assert.equal(formatBytes(3.5 * 1024 ** 3), '3.5 GiB');
    assert.equal(formatBytes(200 * 1024 ** 2), '200 MiB');
    assert.equal(diskLine('d', 'disk space', '/c', 10 * 1024 ** 3).ok, true);
    const low = diskLine('d', 'disk space', '/c', 100 * 1024 ** 2);
    assert.equal(low.ok, false);
    assert.equal(low.required, true);
    assert.match(formatDoctorLine(low), /✗ disk space: 100 MiB free in \/c — fix: free at least 1\.0 GiB/);
    assert.equal(diskLine('d', 'disk space', '/c', MIN_FREE_BYTES).ok, true);
    assert.equal(diskLine('d', 'disk space', '/c', undefined).ok, false);
  });

  it('names the missing QEMU, qemu-img, socat and image tools with their packages (empty cache, nothing on PATH)', async () => {
    const cache = await mkdtemp(path.join(os.tmpdir(), 'cowork-doctor-'));
    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const lines = await runDoctor({
        cacheDir: cache,
        sources,
        arch: 'amd64',
        qemuBinary: 'qemu-system-x86_64',
        probe: () => Promise.reject(new Error('not probed')),
        verdicts: AcceleratorVerdicts.inCache(cache),
        bootTimes: BootTimes.inCache(cache),
        sessionsDir: path.join(cache, 'sessions'),
        platform: 'darwin', // no /dev/kvm line: the test does not depend on this machine's device
      });
      const text = lines.map(formatDoctorLine);
      assert.ok(text.includes('✗ QEMU: qemu-system-x86_64 not found — fix: sudo apt-get install qemu-system-x86 (macOS: brew install qemu)'), text.join('\n'));
      assert.ok(text.some((l) => l.startsWith('✗ qemu-img:') && l.includes('apt-get install qemu-utils')));
      assert.ok(text.some((l) => l.startsWith('✗ socat:') && l.includes('apt-get install socat')));
      const image = text.find((l) => l.includes('guest image'))!;
      assert.match(image, /^✗ guest image: not built yet and the tools to build it are missing: mmdebstrap, tar2sqfs, cpio, xz — fix: sudo apt-get install mmdebstrap squashfs-tools-ng cpio xz-utils$/);
      assert.ok(text.some((l) => /^✓ disk space \(session disks\): .* free in .*sessions$/.test(l)));
      assert.equal(doctorExitCode(lines), 1);
    } finally {
      process.env.PATH = savedPath;
      await rm(cache, { recursive: true, force: true });
    }
  });
});
