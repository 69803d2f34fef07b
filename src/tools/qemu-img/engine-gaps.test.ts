/**
 * Former differences from QEMU 7.2 whose cause was in the qcow2 engine (src/qcow2), kept as
 * regression tests with QEMU's recorded answers: scenarios 049, 080, 108 and 112 failed on
 * them. The tools run in-process against images prepared by the engine itself plus byte
 * pokes, so no QEMU binary is needed. Engine-level tests of the same behaviour live in
 * src/qcow2 (refcount64, amend-progress, overlap).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordingSink } from '../output.ts';
import { qemuImgMain } from './main.ts';
import { runQemuIo } from '../qemu-io/main.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-gaps-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function img(...args: string[]): Promise<{ exit: number; stdout: string; stderr: string }> {
  const sink = new RecordingSink();
  const exit = await qemuImgMain(args, { out: sink, cwd: dir, env: {} });
  sink.flushStdout();
  return { exit, stdout: sink.text('stdout'), stderr: sink.text('stderr') };
}

async function io(...args: string[]): Promise<number> {
  const sink = new RecordingSink();
  return runQemuIo(args, { out: sink, cwd: dir, env: {} });
}

function poke(file: string, offset: number, hex: string): void {
  const fd = fs.openSync(path.join(dir, file), 'r+');
  fs.writeSync(fd, Buffer.from(hex, 'hex'), 0, hex.length / 2, offset);
  fs.closeSync(fd);
}

describe('qcow2 engine gaps (QEMU 7.2 answers recorded from Debian 7.2.22)', () => {
  // 049: qemu-img create with encryption=on (legacy AES) succeeds in 7.2: the header says
  // crypt_method 1 and nothing else changes; info shows the format under encrypt.
  it('creates an AES-encrypted image (049)', async () => {
    const r = await img('create', '-q', '-f', 'qcow2', '--object', 'secret,id=sec0,data=123456', '-o', 'encryption=on,encrypt.key-secret=sec0', 'e.qcow2', '64M');
    expect(r.stderr).toBe('');
    expect(r.exit).toBe(0);
    const hdr = fs.readFileSync(path.join(dir, 'e.qcow2')).subarray(32, 36);
    expect(hdr.readUInt32BE(0)).toBe(1);
    const info = await img('info', 'e.qcow2');
    expect(info.stdout).toContain('encrypted: yes\n');
    expect(info.stdout).toContain('    refcount bits: 16\n    encrypt:\n        format: aes\n    corrupt: false\n');
  });

  // 112: check messages print refcounts as JavaScript numbers; 2^64 - 1 loses precision.
  it('prints 64-bit refcounts exactly in check messages (112)', async () => {
    await img('create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=64', 'a.qcow2', '64M');
    await io('-c', 'write 0 512', 'a.qcow2');
    poke('a.qcow2', 0x20028, 'ffffffffffffffff');
    poke('a.qcow2', 0x40000, '0000000000050000');
    const r = await img('check', 'a.qcow2');
    expect(r.stderr).toContain('Leaked cluster 5 refcount=18446744073709551615 reference=1\n');
  });

  // 112: amend -p shows the refcount-width walks; the engine never calls onProgress, so only
  // qemu-img's own 0 % and 100 % lines appear.
  it('reports amend progress while changing the refcount width (112)', async () => {
    await img('create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=1,cluster_size=512', 'p.qcow2', '64k');
    await io('-c', `write 0 ${58 * 512}`, 'p.qcow2');
    const r = await img('amend', '-o', 'refcount_bits=64', '-p', 'p.qcow2');
    const lines = r.stdout.split('\r');
    expect(lines).toContain('    (66.67/100%)');
    expect(lines[lines.indexOf('    (66.67/100%)') + 1]).toBe('    (50.00/100%)');
    // 3.125 is printed as glibc rounds ties (to even).
    expect(lines).toContain('    (3.12/100%)');
  });

  // 108: repairing a refblock "outside the image" at an offset whose end overflows int64:
  // QEMU checks offset > INT64_MAX - cluster_size first and reports EINVAL.
  it('refuses to grow the file past INT64_MAX while repairing (108)', async () => {
    await img('create', '-q', '-f', 'qcow2', 'b.qcow2', '64M');
    poke('b.qcow2', 0x10008, 'ffffffffffff0000');
    const r = await img('check', '-r', 'all', 'b.qcow2');
    expect(r.stderr.split('\n').slice(0, 2)).toEqual(['Repairing refcount block 1 is outside image', 'ERROR could not resize image: Invalid argument']);
  });

  // 080: a snapshot of an image whose L2 entry points far beyond the file fails with EAGAIN
  // in QEMU (the refcount update of the bogus cluster); the engine creates the snapshot.
  it('fails a snapshot over an L2 entry with a huge host offset (080)', async () => {
    await img('create', '-q', '-f', 'qcow2', 'c.qcow2', '64M');
    await io('-c', 'write 0 512', 'c.qcow2');
    poke('c.qcow2', 0x40000, '800000ffffff0000');
    const r = await img('snapshot', '-c', 'test', 'c.qcow2');
    expect(r.stderr).toBe("qemu-img: Could not create snapshot 'test': -11 (Resource temporarily unavailable)\n");
    expect(r.exit).toBe(1);
  });

  // 080: amend compat=0.10 validates every snapshot's L1 table and error_report()s the
  // problem before failing; the engine only throws the final error.
  it('reports the bad snapshot L1 table during amend (080)', async () => {
    await img('create', '-q', '-f', 'qcow2', 's.qcow2', '64M');
    await io('-c', 'write 0 512', 's.qcow2');
    await img('snapshot', '-c', 'test', 's.qcow2');
    // Snapshot table at 0x50000 here; l1_table_offset of the first entry is its first field.
    const snapTable = fs.readFileSync(path.join(dir, 's.qcow2')).readBigUInt64BE(64);
    poke('s.qcow2', Number(snapTable), '0000000000400200');
    const r = await img('amend', '-o', 'compat=0.10', 's.qcow2');
    expect(r.stderr).toBe('qemu-img: Snapshot L1 table offset invalid\nqemu-img: Failed to turn zero into data clusters: Invalid argument\n');
  });

  // 080: with overlap-check.inactive-l2=on QEMU reads the snapshot L1 tables for the check and
  // fails the write's refcount flush with EINVAL; the engine ignores overlap-check options.
  it('honours overlap-check.inactive-l2 with a bad snapshot L1 table (080)', async () => {
    await img('create', '-q', '-f', 'qcow2', 's.qcow2', '64M');
    await io('-c', 'write 0 512', 's.qcow2');
    await img('snapshot', '-c', 'test', 's.qcow2');
    const snapTable = fs.readFileSync(path.join(dir, 's.qcow2')).readBigUInt64BE(64);
    poke('s.qcow2', Number(snapTable), '0000000000400200');
    const sink = new RecordingSink();
    const exit = await runQemuIo(['-c', 'open -o overlap-check.inactive-l2=on s.qcow2', '-c', 'write 0 4k'], { out: sink, cwd: dir, env: {} });
    sink.flushStdout();
    expect(sink.merged()).toBe('qemu-io: Failed to flush the refcount block cache: Invalid argument\nwrite failed: Invalid argument\n');
    expect(exit).toBe(1);
  });
});
