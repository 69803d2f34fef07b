/**
 * Test 244 through the real CLI on the qemu backend (Debian's QEMU 7.2 installed by .ci/run).
 * Skips cleanly when the binaries are missing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, qtest } from './cli.ts';
import { hasProgram } from '../../src/qcow2/testing/qemu.ts';

const haveQemu = hasProgram(process.env.QEMU_IMG ?? 'qemu-img') && hasProgram(process.env.QEMU_IO ?? 'qemu-io') && hasProgram(process.env.QSD_PROG ?? 'qemu-storage-daemon');
const haveSystem = hasProgram(process.env.QEMU_PROG ?? 'qemu-system-x86_64');
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
    // A scenario of echoes keeps this fast; the backend still reports the QEMU version.
    const scen = path.join(tmp, 'report-scenarios');
    fs.mkdirSync(scen, { recursive: true });
    fs.writeFileSync(path.join(scen, '900.yaml'), 'id: 900\ntitle: echo only\nsteps:\n  - echo: hi\n');
    fs.writeFileSync(path.join(scen, '901.yaml'), 'id: 901\ntitle: mismatch\nsteps:\n  - echo: hi\n');
    const dir = expectedDir('reports', null);
    fs.writeFileSync(path.join(dir, '900.out'), 'QA output created by 900\nhi\n*** done\n');
    fs.writeFileSync(path.join(dir, '901.out'), 'QA output created by 901\nho\n*** done\n');
    const env = { QTEST_SCENARIOS: scen, QTEST_EXPECTED: dir };
    const json = path.join(tmp, 'reports', 'r.json');
    expect(qtest(['run', '--backend', 'qemu', '--reporter', 'json', '--output', json], env).status).toBe(1);
    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { counts: { passed: number; failed: number }; results: { id: string; status: string; diff?: string }[]; qemuVersion: string };
    expect(report.counts).toMatchObject({ passed: 1, failed: 1 });
    expect(report.results[1]).toMatchObject({ id: '901', status: 'fail' });
    expect(report.results[1]!.diff).toContain('-ho\n+hi');
    expect(report.qemuVersion).toMatch(/^\d+\.\d+\.\d+$/);
    const tap = qtest(['run', '--backend', 'qemu', '--reporter', 'tap', '900'], env);
    expect(tap.stdout).toBe('TAP version 13\n1..1\nok 1 900 - echo only\n');
    expect(tap.stderr).toMatch(/^900 {2}pass/m);
    const junit = path.join(tmp, 'reports', 'r.xml');
    qtest(['run', '--backend', 'qemu', '--reporter', 'junit', '--output', junit], env);
    const xml = fs.readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testcase classname="qtest\.qemu" name="900" time="[\d.]+"><\/testcase>/);
    expect(xml).toMatch(/<testcase classname="qtest\.qemu" name="901" time="[\d.]+">\n\s+<failure message="output mismatch">/);
  });

  it('-j 2 runs copies side by side in their own TEST_DIRs; groups and requires select and skip', () => {
    const scen = path.join(tmp, 'scenarios');
    fs.mkdirSync(scen, { recursive: true });
    const source = fs.readFileSync(path.join(ROOT, 'scenarios/244.yaml'), 'utf8');
    fs.writeFileSync(path.join(scen, '244.yaml'), source);
    fs.writeFileSync(path.join(scen, '245.yaml'), source.replace(/^id: 244$/m, 'id: 245'));
    fs.writeFileSync(path.join(scen, '246.yaml'), source.replace(/^id: 244$/m, 'id: 246').replace('fmt: [qcow2]', 'fmt: [raw]'));
    fs.writeFileSync(path.join(scen, '247.yaml'), source.replace(/^id: 244$/m, 'id: 247').replace('groups: [rw, auto, quick]', 'groups: [slow]'));
    const dir = expectedDir('parallel', expected244);
    fs.writeFileSync(path.join(dir, '245.out'), expected244.replace('created by 244', 'created by 245'));
    const r = qtest(['run', '--backend', 'qemu', '-j', '2', '-x', 'slow'], { QTEST_SCENARIOS: scen, QTEST_EXPECTED: dir });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^246 {2}skip .*not suitable for this image format: qcow2$/m);
    expect(r.stdout).not.toMatch(/^247 /m);
    expect(r.stdout).toMatch(/^2 passed, 0 failed, 1 skipped/m);
  });

  it.skipIf(!haveSystem)('gives the same transcript with QMP through qemu-system-x86_64 -machine none', () => {
    const r = qtest(['run', '244', '--backend', 'qemu'], { QTEST_QMP_VIA: 'system' });
    expect(r.status).toBe(0);
  });
});
