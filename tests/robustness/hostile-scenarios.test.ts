/**
 * Hostile and broken scenarios through the real CLI (`qtest run`): each stops with exit 2 and
 * a message naming the place (file:line:col) and the problem, never a stack trace or an
 * internal error text, and nothing outside TEST_DIR is touched. Load-time problems (YAML,
 * unknown steps, paths out of TEST_DIR in the scenario's text, absurd limits) and run-time ones
 * (names stored inside images that lead out, sizes and offsets beyond what files hold, runaway
 * loops) alike; the image cases run on both backends where QEMU is installed. Then the runner
 * in-process, with symlinks in TEST_DIR that lead out.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import type { Backend, QmpConnection, ToolInvocation, ToolRun } from '../../src/backends/types.ts';
import { loadFilterDir } from '../../src/filters/load.ts';
import { parseScenario } from '../../src/scenario/load.ts';
import { PathEscapeError, runScenario } from '../../src/runner/run-scenario.ts';
import { createBuiltinBackend } from '../../src/backends/builtin.ts';
import { haveQemuImg } from '../../fuzz/seeds.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-hostile-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const qemu = haveQemuImg();

/** A file outside every TEST_DIR that no case may change. */
const canary = path.join(tmp, 'canary');
fs.writeFileSync(canary, 'untouched');

/** Not in any answer of qtest's: what an escaped JavaScript error looks like. */
const INTERNAL = /\b(TypeError|RangeError|ReferenceError|Maximum call stack|is not a function|Cannot read properties|out of range\. It must be|ERR_[A-Z_]+)\b|^\s+at .*:\d+:\d+\)?$/m;

interface Cli {
  status: number | null;
  stdout: string;
  stderr: string;
}

let projects = 0;
/** `qtest run ARGS` in a private project holding one scenario (id 900). */
function qtestRun(body: string | null, args: string[] = ['900']): Promise<Cli> {
  const dir = path.join(tmp, `p${projects++}`);
  for (const sub of ['scenarios', 'expected', 'state', 'scratch']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  if (body !== null) fs.writeFileSync(path.join(dir, 'scenarios', '900.yaml'), body);
  const env = {
    ...process.env,
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    QTEST_SCENARIOS: path.join(dir, 'scenarios'),
    QTEST_EXPECTED: path.join(dir, 'expected'),
    QTEST_STATE: path.join(dir, 'state'),
    QTEST_SCRATCH: path.join(dir, 'scratch'),
  };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/qtest.js'), ...(body === null ? args : ['run', ...args])], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const HEAD = 'id: 900\ntitle: hostile\nsteps:\n';
/** Make an image with a backing file, then give it another backing file name (poked). */
const pokeBacking = (name: string): string =>
  `${HEAD}  - make_test_img: 1M\n    image: $TEST_DIR/base-image-with-a-long-name.qcow2\n` +
  '  - make_test_img: 1M\n    backing: base-image-with-a-long-name.qcow2\n    backing_fmt: qcow2\n' +
  '  - peek_file_be: {file: $TEST_IMG, offset: 8, size: 8, into: boff}\n' +
  `  - poke_file: {file: $TEST_IMG, offset: $boff, data: '${name}'}\n` +
  `  - poke_file_be: {file: $TEST_IMG, offset: 16, size: 4, value: ${name.length}}\n` +
  '  - qemu-img: [info, $TEST_IMG]\n';

interface Case {
  name: string;
  yaml: string;
  /** Expected in the output (stdout + stderr). */
  message: RegExp;
  /** Also run on the qemu backend (when installed). */
  qemuToo?: boolean;
}

const LOAD_TIME: Case[] = [
  { name: 'YAML syntax error', yaml: `${HEAD}  - echo: [unclosed\n`, message: /900\.yaml:\d+:\d+: YAML syntax error/ },
  { name: 'scenario that is a list', yaml: '- echo: a\n', message: /900\.yaml:1:1: /ms },
  { name: 'empty scenario file', yaml: '', message: /900\.yaml:1:1: / },
  { name: 'unknown step kind', yaml: `${HEAD}  - qemu-imgg: [info]\n`, message: /900\.yaml:4:5: unknown step kind 'qemu-imgg' \(did you mean 'qemu-img'\?\)/ },
  { name: 'unknown key of a step', yaml: `${HEAD}  - truncate: {file: x, size: 1M, mode: 0644}\n`, message: /900\.yaml:4:\d+: .*mode/ },
  { name: 'unknown variable', yaml: `${HEAD}  - echo: $NOPE\n`, message: /900\.yaml:4:\d+: unknown variable \$NOPE/ },
  { name: 'absolute path in a tool argument', yaml: `${HEAD}  - qemu-img: [info, /etc/passwd]\n`, message: /900\.yaml:4:22: path '\/etc\/passwd' is refused: it resolves outside TEST_DIR/ },
  { name: '.. escape in a file step', yaml: `${HEAD}  - truncate: {file: ../escape, size: 1M}\n`, message: /900\.yaml:4:\d+: path '\.\.\/escape' is refused/ },
  { name: 'home directory path', yaml: `${HEAD}  - rm: ~/x\n`, message: /path '~\/x' is refused: home-directory paths are not allowed/ },
  { name: 'json: filename leading out', yaml: `${HEAD}  - qemu-io: [-c, "read 0 1", 'json:{"driver": "file", "filename": "${canary}"}']\n`, message: /path '.*canary' is refused/ },
  { name: 'data_file option leading out', yaml: `${HEAD}  - make_test_img: 1M\n    opts: data_file=${canary}\n`, message: /path '.*canary' is refused/ },
  { name: 'backing file leading out', yaml: `${HEAD}  - make_test_img: 1M\n    backing: ${canary}\n`, message: /path '.*canary' is refused/ },
  { name: 'while max beyond the limit', yaml: `${HEAD}  - while: "1"\n    max: 1000000000000\n    steps:\n      - echo: x\n`, message: /900\.yaml:5:\d+: max must be a whole number of rounds up to 10000000/ },
  { name: 'QMP timeout beyond the limit', yaml: `${HEAD}  - qmp:\n      launch: []\n      exchange:\n        - send: x\n          until: y\n          timeout: 99999999\n`, message: /timeout must be at most 3600 seconds/ },
  { name: 'retries beyond the limit', yaml: `${HEAD}  - qemu-img: [info, x]\n    retries: 1000\n`, message: /retries must be a whole number from 1 to 10/ },
  { name: 'TEST_DIR assigned', yaml: `${HEAD}  - set: {TEST_DIR: /tmp}\n`, message: /TEST_DIR/ },
  { name: 'QMP command text naming a file outside', yaml: `${HEAD}  - qmp:\n      launch: []\n      exchange:\n        - send: '{"execute": "blockdev-add", "arguments": {"driver": "file", "node-name": "x", "filename": "${canary}"}}'\n`, message: /path '.*canary' is refused/ },
];

const RUN_TIME: Case[] = [
  { name: 'truncate to 2^63 - 1 bytes', yaml: `${HEAD}  - truncate: {file: x, size: 9223372036854775807}\n`, message: /900\.yaml:4:5: size '9223372036854775807' is too large/ },
  { name: 'truncate to 10^20 bytes', yaml: `${HEAD}  - truncate: {file: x, size: 99999999999999999999}\n`, message: /size '99999999999999999999' is too large/ },
  { name: 'truncate beyond what the file system holds', yaml: `${HEAD}  - truncate: {file: x, size: 9007199254740991}\n`, message: /truncate: cannot set the size of 'x' to 9007199254740991 bytes: (File too large|Invalid argument)/ },
  { name: 'poke at 2^63 - 1', yaml: `${HEAD}  - poke_file: {file: x, offset: 9223372036854775807, data: '\\x01'}\n`, message: /offset 9223372036854775807 is too large/ },
  { name: 'poke_file_be at 2^62', yaml: `${HEAD}  - poke_file_be: {file: x, offset: 4611686018427387904, size: 8, value: 1}\n`, message: /offset 4611686018427387904 is too large/ },
  { name: 'peek at an offset beyond 2^53', yaml: `${HEAD}  - touch: x\n  - peek_file_be: {file: x, offset: 18014398509481984, size: 8}\n`, message: /offset 18014398509481984 is too large/ },
  { name: 'poke beyond what the file system holds', yaml: `${HEAD}  - poke_file: {file: x, offset: 9007199254740990, data: 'ab'}\n`, message: /poke_file: cannot write 2 bytes at offset 9007199254740990 of 'x': (File too large|Invalid argument)/ },
  { name: 'printf with an absurd width', yaml: `${HEAD}  - printf: '%999999999d'\n    args: ['1']\n`, message: /printf: field width or precision 999999999 is too large/ },
  { name: '$(seq) with 10^15 numbers', yaml: `${HEAD}  - foreach: $(seq 1 999999999999999)\n    var: i\n    steps:\n      - echo: $i\n`, message: /seq: too many numbers/ },
  { name: 'io_pattern with 10^12 requests', yaml: `${HEAD}  - make_test_img: 1M\n  - io_pattern: {op: read, start: 0, size: 512, step: 512, count: 999999999999, pattern: 0}\n`, message: /count 999999999999 is larger than 1000000/ },
  { name: 'peek_file_raw of 1 GiB', yaml: `${HEAD}  - touch: x\n  - peek_file_raw: {file: x, offset: 0, size: 1073741824}\n`, message: /size 1073741824 is larger than 1048576/ },
  { name: 'a while loop that never ends', yaml: `${HEAD}  - while: "1"\n    max: 2000\n    steps:\n      - set: {a: b}\n`, message: /while loop did not end after 2000 rounds/ },
  { name: 'division by zero', yaml: `${HEAD}  - echo: $((1/0))\n`, message: /900\.yaml:4:5: 1\/0: division by 0/ },
  { name: 'a path built at run time leading out', yaml: `${HEAD}  - echo: ${path.dirname(canary)}\n    into: where\n  - qemu-img: [info, $where/canary]\n`, message: /path '.*canary' is refused: it resolves outside TEST_DIR/ },
  { name: 'backing file name poked into an image', yaml: pokeBacking(canary), message: /image 't\.qcow2' names '.*canary' as its backing file, and it resolves outside TEST_DIR; refusing to run a step/, qemuToo: true },
  { name: 'backing file as a json: filename', yaml: pokeBacking(`json:{"driver": "raw", "file": {"driver": "file", "filename": "${canary}"}}`), message: /image 't\.qcow2' names 'json:.*canary.*' as its backing file/, qemuToo: true },
  { name: 'backing file with a file: prefix', yaml: pokeBacking(`file:${canary}`), message: /names 'file:.*canary' as its backing file/, qemuToo: true },
  { name: 'backing file with .. segments', yaml: pokeBacking('../../../../../../../../etc/hostname'), message: /names '\.\.\/.*etc\/hostname' as its backing file/, qemuToo: true },
  {
    name: 'data file name poked into an image',
    yaml:
      `${HEAD}  - make_test_img: 1M\n    opts: data_file=$TEST_IMG.data\n` +
      '  - peek_file_be: {file: $TEST_IMG, offset: 100, size: 4, into: hl}\n' +
      "  - poke_file: {file: $TEST_IMG, offset: $((hl + 8)), data: '/etc/'}\n" +
      "  - qemu-io: [-c, 'write -P 0x11 0 64k', $TEST_IMG]\n",
    message: /image 't\.qcow2' names '\/etc\/.*' as its data file, and it resolves outside TEST_DIR/,
    qemuToo: true,
  },
];

describe('hostile scenarios stop with exit 2 and a clear message', () => {
  const check = (r: Cli, c: Case): void => {
    const all = `${r.stdout}${r.stderr}`;
    expect(all, all).toMatch(c.message);
    expect(r.status, all).toBe(2);
    expect(all).not.toMatch(INTERNAL);
    expect(fs.readFileSync(canary, 'utf8')).toBe('untouched');
  };
  for (const c of LOAD_TIME) it.concurrent(`load time: ${c.name}`, async () => check(await qtestRun(c.yaml), c));
  for (const c of RUN_TIME) {
    it.concurrent(`run time: ${c.name}`, async () => check(await qtestRun(c.yaml), c));
    if (c.qemuToo) (qemu ? it.concurrent : it.skip)(`run time, qemu backend: ${c.name}`, async () => check(await qtestRun(c.yaml, ['900', '--backend', 'qemu']), c));
  }
});

describe('hostile command lines of qtest itself exit 2 with usage, no stack trace', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown option', ['run', '--bogus'], /qtest run: .*bogus/],
    ['unknown command', ['frobnicate'], /qtest: unknown command 'frobnicate'/],
    ['unknown backend', ['run', '--backend', 'nosuch'], /unknown backend 'nosuch'/],
    ['-j 0', ['run', '-j', '0'], /-j\/--jobs/],
    ['-j huge', ['run', '-j', '99999999999999999999'], /-j\/--jobs/],
    ['bad shard', ['run', '--shard', '3/2'], /--shard needs I\/N/],
    ['no such scenario', ['run', '999'], /no scenario matches '999'/],
    ['unknown reporter', ['run', '--reporter', 'xml'], /unknown reporter 'xml'/],
    ['--output without --reporter', ['run', '--output', 'x.json'], /--output needs --reporter/],
  ];
  for (const [name, args, message] of cases) {
    it.concurrent(name, async () => {
      const r = await qtestRun(null, args);
      const all = `${r.stdout}${r.stderr}`;
      expect(all).toMatch(message);
      expect(r.status).toBe(2);
      expect(all).not.toMatch(INTERNAL);
    });
  }
});

describe('symlinks in TEST_DIR that lead out (runner in-process, builtin backend)', () => {
  const filters = loadFilterDir(path.join(ROOT, 'filters'));
  const settings = { imgfmt: 'qcow2', imgproto: 'file', qemuIoOptions: ['--cache', 'writeback', '--aio', 'threads'], qemuProgName: 'qemu-system-x86_64' };
  let testDir: string;
  let outside: string;
  beforeEach(() => {
    testDir = fs.mkdtempSync(path.join(tmp, 'td-'));
    outside = fs.mkdtempSync(path.join(tmp, 'outside-'));
    fs.writeFileSync(path.join(outside, 'victim'), 'untouched');
    fs.symlinkSync(outside, path.join(testDir, 'out'));
    fs.symlinkSync(path.join(outside, 'victim'), path.join(testDir, 'victim-link'));
  });
  afterEach(() => fs.rmSync(testDir, { recursive: true, force: true }));
  const run = (steps: string, backend: Backend = createBuiltinBackend()) =>
    runScenario(parseScenario('scenarios/900.yaml', `${HEAD}${steps}`, { filterNames: new Set(filters.keys()) }), { backend, filters, settings, testDir });
  const untouched = (): void => {
    expect(fs.readFileSync(path.join(outside, 'victim'), 'utf8')).toBe('untouched');
    expect(fs.readdirSync(outside)).toEqual(['victim']);
  };

  const cases: [string, string, RegExp][] = [
    ['truncate through a linked directory', '  - truncate: {file: out/victim, size: 1M}\n', /path 'out\/victim' is refused: it leads outside TEST_DIR through a symbolic link/],
    ['image created in a linked directory', '  - qemu-img: [create, -f, qcow2, out/new.qcow2, 1M]\n', /path 'out\/new\.qcow2' is refused/],
    ['poke through a linked file', "  - poke_file: {file: victim-link, offset: 0, data: 'X'}\n", /path 'victim-link' is refused/],
    ['file size of a linked file', '  - file_size: victim-link\n', /path 'victim-link' is refused/],
    ['qemu-io open through a link', "  - qemu-io: [-c, 'open -o driver=raw out/victim', -c, 'write 0 1']\n    no_fmt: true\n", /path 'out\/victim' is refused/],
    ['mkdir in a linked directory', '  - mkdir: out/newdir\n', /path 'out\/newdir' is refused/],
    ['rm through a linked file', '  - rm: victim-link\n', /path 'victim-link' is refused/],
    ['backing file name leading out through a link', pokeBacking('out/victim').slice(HEAD.length), /image 't\.qcow2' names 'out\/victim' as its backing file, and it leads outside TEST_DIR through a symbolic link/],
  ];
  for (const [name, steps, message] of cases) {
    it(name, async () => {
      const r = run(steps);
      await expect(r).rejects.toBeInstanceOf(PathEscapeError);
      await expect(r).rejects.toThrow(message);
      untouched();
    });
  }

  it('all hostile tables together hold at least 40 cases', () => {
    expect(LOAD_TIME.length + RUN_TIME.length + cases.length).toBeGreaterThanOrEqual(40);
  });

  it('a path the builtin tools were refused stops the scenario (defence behind the checks)', async () => {
    // A backend whose tool asks the policy for a path no check before the step could see.
    const backend: Backend = {
      name: 'builtin',
      async runTool(inv: ToolInvocation): Promise<ToolRun> {
        try {
          inv.pathPolicy?.check(path.join(outside, 'victim'), 'write');
        } catch {
          return { exitCode: 1, merged: "qemu-img: Could not open 'victim': refused\n", stdout: '', stderr: '' };
        }
        return { exitCode: 0, merged: '', stdout: '', stderr: '' };
      },
      async launchQmp(): Promise<QmpConnection> {
        throw new Error('no QMP');
      },
      async qemuVersion() {
        return '7.2.22';
      },
    };
    const r = run('  - qemu-img: [info, x]\n  - echo: not reached\n', backend);
    await expect(r).rejects.toThrow(/900\.yaml:4:5: the step tried to open '.*victim', which is outside TEST_DIR/);
    untouched();
  });
});
