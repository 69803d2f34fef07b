/**
 * Test 244 through the real CLI on the qemu backend (Debian's QEMU 7.2 installed by .ci/run).
 * Skips cleanly when the binaries are missing.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, qtest } from './cli.ts';

function has(program: string): boolean {
  try {
    execFileSync(program, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const haveQemu = has(process.env.QEMU_IMG ?? 'qemu-img') && has(process.env.QEMU_IO ?? 'qemu-io') && has(process.env.QSD_PROG ?? 'qemu-storage-daemon');
const haveSystem = has(process.env.QEMU_PROG ?? 'qemu-system-x86_64');
const expected244 = fs.readFileSync(path.join(ROOT, 'expected/244.out'), 'utf8');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-244-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A private expected/ folder so the real one is never touched. */
function expectedDir(name: string, content: string | null): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  if (content !== null) fs.writeFileSync(path.join(dir, '244.out'), content);
  return dir;
}

describe.skipIf(!haveQemu)('244 on real QEMU', () => {
  it('passes, and its transcript is byte-identical to expected/244.out', () => {
    const dir = expectedDir('accept', null);
    // --accept writes the actual transcript, which lets us compare bytes, not just lines.
    const r = qtest(['run', '244', '--backend', 'qemu', '--accept'], { QTEST_EXPECTED: dir });
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, '244.out'), 'utf8')).toBe(expected244);
  });

  it('compares with expected/244.out: pass, exit 0, one line per scenario and a summary', () => {
    const r = qtest(['run', '244', '--backend', 'qemu']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^244 {2}pass {2} *\d+\.\d\ds$/m);
    expect(r.stdout).toMatch(/^1 passed, 0 failed/m);
    expect(fs.existsSync(path.join(ROOT, 'expected/244.out.bad'))).toBe(false);
  });

  it('a changed expected line fails with exit 1, shows the line in the diff and writes 244.out.bad', () => {
    const changed = expected244.replace('qcow2 file size after I/O: 327680', 'qcow2 file size after I/O: 327681');
    expect(changed).not.toBe(expected244);
    const dir = expectedDir('changed', changed);
    const r = qtest(['run', '244', '--backend', 'qemu'], { QTEST_EXPECTED: dir });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('-qcow2 file size after I/O: 327681');
    expect(r.stdout).toContain('+qcow2 file size after I/O: 327680');
    expect(r.stdout).toMatch(/^0 passed, 1 failed/m);
    expect(fs.readFileSync(path.join(dir, '244.out.bad'), 'utf8')).toBe(expected244);
  });

  it('ignores trailing whitespace, as iotests do', () => {
    const dir = expectedDir('blanks', expected244.replace('=== Copy offloading ===\n', '=== Copy offloading ===  \t\n'));
    expect(qtest(['run', '244', '--backend', 'qemu'], { QTEST_EXPECTED: dir }).status).toBe(0);
  });

  it('writes json, junit and tap reports', () => {
    const out = path.join(tmp, 'reports');
    const json = path.join(out, 'r.json');
    expect(qtest(['run', '244', '--backend', 'qemu', '--reporter', 'json', '--output', json]).status).toBe(0);
    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { counts: { passed: number }; results: { id: string; status: string }[]; qemuVersion: string };
    expect(report.counts.passed).toBe(1);
    expect(report.results[0]).toMatchObject({ id: '244', status: 'pass' });
    expect(report.qemuVersion).toMatch(/^7\.2\./);
    const tap = qtest(['run', '244', '--backend', 'qemu', '--reporter', 'tap']);
    expect(tap.stdout).toBe('TAP version 13\n1..1\nok 1 244 - qcow2 with external data files\n');
    const junit = path.join(out, 'r.xml');
    qtest(['run', '244', '--backend', 'qemu', '--reporter', 'junit', '--output', junit]);
    expect(fs.readFileSync(junit, 'utf8')).toMatch(/<testcase classname="qtest\.qemu" name="244" time="[\d.]+"><\/testcase>/);
  });

  it.skipIf(!haveSystem)('gives the same transcript with QMP through qemu-system-x86_64 -machine none', () => {
    const r = qtest(['run', '244', '--backend', 'qemu'], { QTEST_QMP_VIA: 'system' });
    expect(r.status).toBe(0);
  });
});
