/**
 * The authoring workflow through the real CLI: qtest new, skips with reasons, --rerun-failed,
 * --shard, --qemu-version variants, watch mode, and crosscheck. Echo-only scenarios on the
 * builtin backend keep it fast; crosscheck needs real QEMU and skips without it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseScenario } from '../../src/scenario/load.ts';
import { ROOT, qtest } from './cli.ts';
import { hasProgram } from '../../src/qcow2/testing/qemu.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-workflow-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const haveQemu = hasProgram(process.env.QEMU_IMG ?? 'qemu-img') && hasProgram(process.env.QEMU_IO ?? 'qemu-io');
const haveBuiltin = fs.existsSync(path.join(ROOT, 'src/backends/builtin.ts'));

/** A private project: scenarios, expected and state folders. */
function project(name: string, scenarios: Record<string, string>, expected: Record<string, string> = {}): Record<string, string> {
  const dir = path.join(tmp, name);
  for (const sub of ['scenarios', 'expected', 'state']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  for (const [id, body] of Object.entries(scenarios)) fs.writeFileSync(path.join(dir, 'scenarios', `${id}.yaml`), `id: ${id}\ntitle: t${id}\n${body}`);
  for (const [file, text] of Object.entries(expected)) fs.writeFileSync(path.join(dir, 'expected', file), text);
  return { QTEST_SCENARIOS: path.join(dir, 'scenarios'), QTEST_EXPECTED: path.join(dir, 'expected'), QTEST_STATE: path.join(dir, 'state'), QTEST_SCRATCH: path.join(dir, 'scratch') };
}
const echo = (text: string): string => `steps:\n  - echo: ${text}\n`;
const out = (id: string, text: string): string => `QA output created by ${id}\n${text}\n*** done\n`;

describe('qtest new', () => {
  it('writes a skeleton that validates, with the schema header, groups and one step', () => {
    const env = project('new', {});
    const r = qtest(['new', '901', '--title', 'resize: grow and shrink', '-g', 'rw,quick'], env);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('created ');
    expect(r.stdout).toContain('npx qtest run 901 --backend qemu --accept');
    const file = path.join(env.QTEST_SCENARIOS!, '901.yaml');
    const text = fs.readFileSync(file, 'utf8');
    expect(text.startsWith('# yaml-language-server: $schema=../schema/scenario.schema.json\n')).toBe(true);
    const s = parseScenario(file, text, { filterNames: new Set(['qemu_io']) });
    expect(s).toMatchObject({ id: '901', title: 'resize: grow and shrink', groups: ['rw', 'quick'], requires: { fmt: ['qcow2'], proto: ['file'] } });
    expect(s.steps).toHaveLength(1);
  });

  it('refuses an existing scenario, a missing title and a bad id', () => {
    const env = project('new-bad', { '902': echo('x') });
    expect(qtest(['new', '902', '--title', 'x'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('already exists') });
    expect(qtest(['new', '903'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('--title is required') });
    expect(qtest(['new', '../x', '--title', 'x'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('not a usable scenario ID') });
  });
});

describe.skipIf(!haveBuiltin)('qtest run: skips, --rerun-failed, --shard, --qemu-version', () => {
  it('shows skips with reasons in the summary and a Not run line', () => {
    const env = project('skip', { '910': `requires: { fmt: [raw] }\n${echo('a')}`, '911': `requires: { features: [fuse] }\n${echo('b')}`, '912': echo('c') }, { '912.out': out('912', 'c') });
    const r = qtest(['run'], env);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^910 {2}skip .*not suitable for this image format: qcow2$/m);
    expect(r.stdout).toMatch(/^911 {2}skip .*backend builtin lacks feature: fuse$/m);
    expect(r.stdout).toMatch(/^1 passed, 0 failed, 2 skipped/m);
    expect(r.stdout).toContain('Not run: 910 (not suitable for this image format: qcow2), 911 (backend builtin lacks feature: fuse)');
  });

  it('--rerun-failed runs only what failed last time, and says so when nothing did', () => {
    const env = project('rerun', { '920': echo('a'), '921': echo('b'), '922': echo('c') }, { '920.out': out('920', 'a'), '921.out': out('921', 'WRONG'), '922.out': out('922', 'c') });
    expect(qtest(['run'], env).status).toBe(1);
    const again = qtest(['run', '--rerun-failed'], env);
    expect(again.status).toBe(1);
    expect(again.stdout).toMatch(/^921 {2}fail/m);
    expect(again.stdout).not.toMatch(/^92[02] /m);
    fs.writeFileSync(path.join(env.QTEST_EXPECTED!, '921.out'), out('921', 'b'));
    expect(qtest(['run', '--rerun-failed'], env).status).toBe(0);
    expect(qtest(['run', '--rerun-failed'], env).stdout).toContain('nothing failed in the last run');
    expect(qtest(['run', '--rerun-failed', '920'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('give no IDs with it') });
  });

  it('--shard I/N runs disjoint round-robin slices; a bad spec is a usage error', () => {
    const ids = ['930', '931', '932', '933', '934'];
    const env = project('shard', Object.fromEntries(ids.map((id) => [id, echo(id)])), Object.fromEntries(ids.map((id) => [`${id}.out`, out(id, id)])));
    const ran = (i: number): string[] => [...qtest(['run', '--shard', `${i}/2`], env).stdout.matchAll(/^(93\d) {2}pass/gm)].map((m) => m[1]!);
    expect(ran(1)).toEqual(['930', '932', '934']);
    expect(ran(2)).toEqual(['931', '933']);
    expect(qtest(['run', '--shard', '3/2'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('--shard needs I/N') });
  });

  it('--qemu-version picks the expected variant for the builtin backend', () => {
    const env = project('variant', { '940': echo('new') }, { '940.out': out('940', 'old'), '940.out@8.2': out('940', 'new') });
    expect(qtest(['run', '940'], env).status).toBe(1);
    const r = qtest(['run', '940', '--qemu-version', '8.2'], env);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('expected for QEMU 8.2');
    expect(qtest(['run', '940', '--qemu-version', '9.0.1'], env).status).toBe(0);
    expect(qtest(['run', '940', '--qemu-version', 'eight'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('--qemu-version needs a version') });
    expect(qtest(['run', '940', '--backend', 'qemu', '--qemu-version', '8.2'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('is for the builtin backend') });
  });

  it('a mismatch on a variant saves the actual transcript next to that variant', () => {
    const env = project('variant-bad', { '941': echo('x') }, { '941.out.qcow2': out('941', 'y') });
    const r = qtest(['run', '941'], env);
    expect(r.status).toBe(1);
    expect(fs.readFileSync(path.join(env.QTEST_EXPECTED!, '941.out.qcow2.bad'), 'utf8')).toBe(out('941', 'x'));
  });

  it('-j 2 runs builtin scenarios in worker threads: same results, .bad files and timings as -j 1', () => {
    const create = 'steps:\n  - make_test_img: { size: 1M }\n  - qemu-io: [-c, "write -P 0x5 0 64k", $TEST_IMG]\n    filters: [qemu_io]\n';
    const fmt = "Formatting 'TEST_DIR/t.IMGFMT', fmt=IMGFMT size=1048576";
    const io = 'wrote 65536/65536 bytes at offset 0\n64 KiB, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)';
    const env = project('workers', { '950': create, '951': echo('a'), '952': create }, { '950.out': out('950', `${fmt}\n${io}`), '951.out': out('951', 'WRONG'), '952.out': out('952', `${fmt}\n${io}`) });
    const r = qtest(['run', '-j', '2'], env);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^950 {2}pass/m);
    expect(r.stdout).toMatch(/^952 {2}pass/m);
    expect(r.stdout).toMatch(/^951 {2}fail .*output mismatch$/m);
    expect(r.stdout).toContain('-WRONG\n+a\n');
    expect(r.stdout).toMatch(/^2 passed, 1 failed/m);
    expect(fs.readFileSync(path.join(env.QTEST_EXPECTED!, '951.out.bad'), 'utf8')).toBe(out('951', 'a'));
    const timings = JSON.parse(fs.readFileSync(path.join(env.QTEST_STATE!, 'timings.json'), 'utf8')) as Record<string, Record<string, number>>;
    expect(Object.keys(timings.builtin!).sort()).toEqual(['950', '951', '952']);
    expect(fs.readdirSync(env.QTEST_SCRATCH!)).toEqual([]);
  });
});

describe.skipIf(!haveBuiltin)('qtest run --watch', () => {
  it('reruns a scenario when its expected file changes, and stops on SIGTERM', async () => {
    const env = project('watch', { '950': echo('a') }, { '950.out': out('950', 'b') });
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/qtest.js'), 'run', '950', '--watch'], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env } });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const waitFor = async (re: RegExp, count = 1): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while ((text.match(new RegExp(re.source, 'gm')) ?? []).length < count) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; output:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor(/watching for changes/);
    expect(text).toMatch(/^950 {2}fail/m);
    fs.writeFileSync(path.join(env.QTEST_EXPECTED!, '950.out'), out('950', 'a'));
    await waitFor(/^950 {2}pass/);
    expect(text).toContain('changed: 950');
    const code = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    await waitFor(/watching for changes/, 2);
    child.kill('SIGTERM');
    expect(await code).toBe(0);
  });
});

describe.skipIf(!haveBuiltin || !haveQemu)('qtest crosscheck', () => {
  it('one line per scenario; a difference from the expected file is shown and exits 1', () => {
    const env = project('cross', { '960': echo('same'), '961': echo('other') }, { '960.out': out('960', 'same'), '961.out': out('961', 'expected') });
    const r = qtest(['crosscheck'], env);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^960 {2}same {5}qemu=expected builtin=expected/m);
    expect(r.stdout).toMatch(/^961 {2}differs {2}qemu=differs builtin=differs/m);
    expect(r.stdout).toContain('-expected\n+other');
    expect(r.stdout).toMatch(/^1 same, 1 differ/m);
    expect(fs.readFileSync(path.join(env.QTEST_STATE!, 'crosscheck/961.builtin.out'), 'utf8')).toBe(out('961', 'other'));
    expect(qtest(['crosscheck', '960'], env).status).toBe(0);
  });
});
