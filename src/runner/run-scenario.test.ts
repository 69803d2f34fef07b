/** The runner against a scripted backend: transcript assembly, streams, exit status, QMP, safety. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend, QmpConnection, QmpLaunch, ToolInvocation, ToolRun } from '../backends/types.ts';
import { loadFilterDir } from '../filters/load.ts';
import { parseScenario } from '../scenario/load.ts';
import { PathEscapeError, runScenario } from './run-scenario.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const filters = loadFilterDir(path.join(ROOT, 'filters'));
const settings = { imgfmt: 'qcow2', imgproto: 'file', qemuIoOptions: ['--cache', 'writeback', '--aio', 'threads'], qemuProgName: 'qemu-system-x86_64' };

class ScriptedBackend implements Backend {
  readonly name = 'builtin' as const;
  readonly calls: ToolInvocation[] = [];
  readonly launches: QmpLaunch[] = [];
  readonly sent: string[] = [];
  runs: ((inv: ToolInvocation) => ToolRun)[] = [];
  qmpLines: string[] = [];
  killed = 0;

  async runTool(inv: ToolInvocation): Promise<ToolRun> {
    this.calls.push(inv);
    const next = this.runs.shift();
    return next ? next(inv) : { exitCode: 0, merged: '', stdout: '', stderr: '' };
  }

  async launchQmp(launch: QmpLaunch): Promise<QmpConnection> {
    this.launches.push(launch);
    const lines = [...this.qmpLines];
    return {
      send: (text) => this.sent.push(text),
      readLine: async () => lines.shift() ?? null,
      kill: async () => {
        this.killed++;
      },
    };
  }

  async qemuVersion(): Promise<string> {
    return '7.2.22';
  }
}

let testDir: string;
beforeEach(() => {
  testDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-runner-'));
});
afterEach(() => {
  fs.rmSync(testDir, { recursive: true, force: true });
});

function scenario(steps: string) {
  return parseScenario('scenarios/900.yaml', `id: 900\ntitle: t\nsteps:\n${steps}`, { filterNames: new Set(filters.keys()) });
}

describe('runScenario', () => {
  it('frames the transcript and prints banners and echoes as 244 does', async () => {
    const b = new ScriptedBackend();
    const out = await runScenario(scenario('  - section: A\n  - echo: x\n  - section: { title: B, blank_after: false }\n  - subsection: C\n  - echo: "n: "\n    newline: false\n  - echo\n'), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe('QA output created by 900\n\n=== A ===\n\nx\n\n=== B ===\n\n--- C ---\nn: \n*** done\n');
  });

  it('gives qemu-io the QEMU_IO prefix and qemu-img nothing, variables expanded', async () => {
    const b = new ScriptedBackend();
    await runScenario(scenario('  - qemu-io: [-f, raw, -c, "read 0 1", $TEST_IMG.data]\n  - qemu-img: [info, $TEST_IMG]\n'), { backend: b, filters, settings, testDir });
    expect(b.calls[0]!.args).toEqual(['--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-f', 'raw', '-c', 'read 0 1', `${testDir}/t.qcow2.data`]);
    expect(b.calls[1]!.args).toEqual(['info', `${testDir}/t.qcow2`]);
    expect(b.calls.every((c) => c.cwd === testDir && c.pathPolicy !== undefined)).toBe(true);
  });

  it('filters merged output, or only stdout with stderr first when stderr is direct', async () => {
    const b = new ScriptedBackend();
    const stats = '64 KiB, 1 ops; 00.00 sec (2.805 GiB/sec and 45953.7705 ops/sec)\n';
    b.runs = [
      () => ({ exitCode: 1, merged: `qemu-io: can't open device ${testDir}/t.qcow2: x\n`, stdout: '', stderr: '' }),
      () => ({ exitCode: 0, merged: '', stdout: `read 1/1 bytes at offset 0\n${stats}`, stderr: `${testDir}/raw-stderr\n` }),
    ];
    const out = await runScenario(scenario('  - qemu-io: [-c, x]\n    stderr: merged\n    filters: [qemu_io, testdir]\n  - qemu-io: [-c, y]\n    filters: [qemu_io, testdir]\n'), { backend: b, filters, settings, testDir });
    expect(b.calls.map((c) => c.streams)).toEqual(['merged', 'separate']);
    expect(out.transcript).toBe(
      `QA output created by 900\nqemu-io: can't open device TEST_DIR/t.qcow2: x\n${testDir}/raw-stderr\nread 1/1 bytes at offset 0\n64 KiB, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n*** done\n`,
    );
  });

  it('make_test_img and check_test_img run the iotests commands with their filters', async () => {
    const b = new ScriptedBackend();
    b.runs = [
      (inv) => ({ exitCode: 0, merged: `Formatting '${inv.args[5]}', fmt=qcow2 cluster_size=65536 size=67108864 data_file=${testDir}/t.qcow2.data lazy_refcounts=off\n`, stdout: '', stderr: '' }),
      () => ({ exitCode: 0, merged: 'No errors were found on the image.\nImage end offset: 262144\n', stdout: '', stderr: '' }),
    ];
    const out = await runScenario(scenario('  - make_test_img: 64M\n    opts: data_file=$TEST_IMG.data\n  - check_test_img\n'), { backend: b, filters, settings, testDir });
    expect(b.calls[0]!.args).toEqual(['create', '-f', 'qcow2', '-o', `data_file=${testDir}/t.qcow2.data`, `${testDir}/t.qcow2`, '64M']);
    expect(b.calls[1]!.args).toEqual(['check', '-f', 'qcow2', `${testDir}/t.qcow2`]);
    expect(out.transcript).toContain("Formatting 'TEST_DIR/t.IMGFMT', fmt=IMGFMT size=67108864 data_file=TEST_DIR/t.IMGFMT.data\nNo errors were found on the image.\n*** done");
  });

  it('exit_status picks the message by the last tool status', async () => {
    const b = new ScriptedBackend();
    b.runs = [() => ({ exitCode: 1, merged: '', stdout: '', stderr: '' }), () => ({ exitCode: 3, merged: '', stdout: '', stderr: '' })];
    const steps = '  - qemu-io: [-c, flush]\n  - echo\n  - exit_status: { 0: zero, 1: one, default: "other $STATUS" }\n';
    const out = await runScenario(scenario(steps + steps), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe('QA output created by 900\n\none\n\nother 3\n*** done\n');
  });

  it('truncate, touch, file_size and rm work on files in TEST_DIR', async () => {
    const b = new ScriptedBackend();
    const out = await runScenario(scenario('  - truncate: { file: $TEST_IMG.data, size: 1M }\n  - file_size: $TEST_IMG.data\n  - touch: $TEST_IMG\n  - file_size: $TEST_IMG\n  - rm: $TEST_IMG\n  - rm: $TEST_IMG\n  - file_size: $TEST_IMG\n'), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe(`QA output created by 900\n1048576\n0\ndu: cannot access '${testDir}/t.qcow2': No such file or directory\n*** done\n`);
  });

  it('QMP: greeting consumed, command echoed through testdir+imgfmt, responses filtered until the pattern, then killed', async () => {
    const b = new ScriptedBackend();
    b.qmpLines = [
      '{"QMP": {"version": {}, "capabilities": ["oob"]}}\r',
      '{"return": {}}\r',
      '{"timestamp": {"seconds": 17, "microseconds": 5}, "event": "JOB_STATUS_CHANGE", "data": {"status": "concluded", "id": "create"}}\r',
      '{"never": "read"}\r',
    ];
    const text = `  - qmp:\n      launch: [-blockdev, "file,node-name=meta,filename=$TEST_IMG"]\n      exchange:\n        - send: |-\n            { "execute": "x",\n               "arguments": { "driver": "qcow2", "f": "$TEST_DIR/a" } }\n          until: '"status": "concluded"'\n`;
    const out = await runScenario(scenario(text), { backend: b, filters, settings, testDir });
    expect(b.launches[0]!.args).toEqual(['-blockdev', `file,node-name=meta,filename=${testDir}/t.qcow2`]);
    expect(b.sent).toEqual([`{ "execute": "x",\n   "arguments": { "driver": "qcow2", "f": "${testDir}/a" } }`]);
    expect(out.transcript).toBe(
      'QA output created by 900\n{ "execute": "x",\n   "arguments": { "driver": "IMGFMT", "f": "TEST_DIR/a" } }\n{"return": {}}\n{"timestamp": {"seconds":  TIMESTAMP, "microseconds":  TIMESTAMP}, "event": "JOB_STATUS_CHANGE", "data": {"status": "concluded", "id": "create"}}\n*** done\n',
    );
    expect(b.killed).toBe(1);
  });

  it('QMP: a pattern never seen aborts the scenario like _timed_wait_for', async () => {
    const b = new ScriptedBackend();
    b.qmpLines = ['{"QMP": {"capabilities": []}}', '{"return": {}}'];
    const out = await runScenario(scenario('  - qmp:\n      launch: []\n      exchange: [{ send: "{}", until: concluded, timeout: 1 }]\n  - echo: after\n'), { backend: b, filters, settings, testDir });
    expect(out.aborted).toMatch(/no QMP response matching 'concluded'/);
    expect(out.transcript).toBe('QA output created by 900\n{}\n{"return": {}}\nTimeout waiting for concluded on handle 0\n');
    expect(b.killed).toBe(1);
  });

  it('refuses a path that leaves TEST_DIR through a symlink before anything runs', async () => {
    fs.symlinkSync(os.tmpdir(), path.join(testDir, 'out'));
    const b = new ScriptedBackend();
    const run = runScenario(scenario('  - qemu-img: [info, $TEST_IMG]\n  - rm: out/victim\n'), { backend: b, filters, settings, testDir });
    await expect(run).rejects.toBeInstanceOf(PathEscapeError);
    await expect(run).rejects.toThrow(/^scenarios\/900\.yaml:5:5: path 'out\/victim' is refused: it leads outside TEST_DIR through a symbolic link/);
    expect(b.calls).toHaveLength(0);
  });
});

describe('variables and control flow', () => {
  it('set, $(( )) arithmetic and $(seq) expand in order; foreach splits a text into words', async () => {
    const b = new ScriptedBackend();
    const steps = [
      '  - set: { CLUSTER_SIZE: 65536, n: "$((2 * CLUSTER_SIZE))", list: "$(seq 0 2) 16" }',
      '  - echo: "$n $((n >> 16)) $((0x10 | 1))"',
      '  - foreach: $list',
      '    var: i',
      '    steps:',
      '      - if: "$i < 2"',
      '        then: [{ echo: "low $i" }]',
      '        else: [{ echo: "high $i" }]',
      '',
    ].join('\n');
    const out = await runScenario(scenario(steps), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe('QA output created by 900\n131072 2 17\nlow 0\nlow 1\nhigh 2\nhigh 16\n*** done\n');
  });

  it('if compares texts with equal/not_equal; while re-checks its condition each round', async () => {
    const b = new ScriptedBackend();
    const steps = [
      '  - set: { a: x, n: 3 }',
      '  - if: { equal: [$a, x] }',
      '    then: [{ echo: same }]',
      '  - if: { not_equal: [$a, x] }',
      '    then: [{ echo: differ }]',
      '  - while: "n > 0"',
      '    steps:',
      '      - echo: "n=$n"',
      '      - set: { n: "$((n - 1))" }',
      '',
    ].join('\n');
    const out = await runScenario(scenario(steps), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe('QA output created by 900\nsame\nn=3\nn=2\nn=1\n*** done\n');
  });

  it('a while loop that never ends is stopped with its position', async () => {
    const b = new ScriptedBackend();
    await expect(runScenario(scenario('  - while: "1"\n    max: 5\n    steps: [echo]\n'), { backend: b, filters, settings, testDir })).rejects.toThrow(
      /^scenarios\/900\.yaml:4:5: while loop did not end after 5 rounds/,
    );
  });

  it('macros: params become variables (defaults, given values), as bash functions set globals', async () => {
    const b = new ScriptedBackend();
    const text = [
      'id: 900',
      'title: t',
      'macros:',
      '  show:',
      '    params: { c: 0, len: null }',
      '    steps:',
      '      - echo: "c=$c len=$len pat=$pat"',
      '      - set: { pat: "$((pat + 1))" }',
      'steps:',
      '  - set: { pat: 0 }',
      '  - call: show',
      '    args: { len: 1k }',
      '  - call: show',
      '    args: { c: 2, len: 4k }',
      '  - echo: "after: c=$c pat=$pat"',
      '',
    ].join('\n');
    const s = parseScenario('scenarios/900.yaml', text, { filterNames: new Set(filters.keys()) });
    const out = await runScenario(s, { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe('QA output created by 900\nc=0 len=1k pat=0\nc=2 len=4k pat=1\nafter: c=2 pat=2\n*** done\n');
  });

  it('an unset variable stops the run with the step position', async () => {
    const b = new ScriptedBackend();
    const run = runScenario(scenario('  - echo: a\n  - if: "0"\n    then: [{ set: { v: 1 } }]\n  - echo: "$v"\n'), { backend: b, filters, settings, testDir });
    await expect(run).rejects.toThrow(/^scenarios\/900\.yaml:7:5: variable \$v is not set/);
  });

  it('printf formats as bash does; -v stores the result', async () => {
    const b = new ScriptedBackend();
    const out = await runScenario(scenario('  - printf: "L2 entry #%d: 0x%016x %016x\\n"\n    args: ["3", "9223372036854775808", "-1"]\n  - printf: "%u"\n    args: ["-1"]\n    into: u\n  - echo: "[$u]"\n'), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe('QA output created by 900\nL2 entry #3: 0x8000000000000000 ffffffffffffffff\n[18446744073709551615]\n*** done\n');
  });
});

describe('tool steps: capture, discard, stdin, inline filters', () => {
  it('into stores filtered stdout without trailing newlines; stderr still reaches the transcript', async () => {
    const b = new ScriptedBackend();
    b.runs = [() => ({ exitCode: 0, merged: '', stdout: '{"actual-size": 1234,\n"x": 1}\n\n', stderr: 'warning\n' })];
    const steps = '  - qemu-img: [info, --output=json, $TEST_IMG]\n    filters: [{ grep: { regex: \'"actual-size":\' } }, { replace: { regex: "[^0-9]", with: "", global: true } }]\n    into: size\n  - echo: "size=$size"\n';
    const out = await runScenario(scenario(steps), { backend: b, filters, settings, testDir });
    expect(b.calls[0]!.streams).toBe('separate');
    expect(out.transcript).toBe('QA output created by 900\nwarning\nsize=1234\n*** done\n');
  });

  it('stdout: discard drops stdout only; stdin reaches the backend; no_fmt leaves -f out', async () => {
    const b = new ScriptedBackend();
    b.runs = [() => ({ exitCode: 0, merged: '', stdout: 'noise\n', stderr: 'err\n' })];
    const out = await runScenario(scenario('  - qemu-io: [-c, "write 0 512", $TEST_IMG]\n    stdout: discard\n  - qemu-io: [--image-opts, x]\n    no_fmt: true\n    stdin: "length\\n"\n'), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe('QA output created by 900\nerr\n*** done\n');
    expect(b.calls[1]!.args).toEqual(['--cache', 'writeback', '--aio', 'threads', '--image-opts', 'x']);
    expect(b.calls[1]!.stdin).toBe('length\n');
  });

  it('io_pattern prints the banner and feeds qemu-io one command per request', async () => {
    const b = new ScriptedBackend();
    b.runs = [() => ({ exitCode: 0, merged: '', stdout: 'qemu-io> wrote 65536/65536 bytes at offset 0\n', stderr: '' })];
    const out = await runScenario(scenario('  - io_pattern: { op: writev, start: 0, size: 65536, step: "$((2 * 65536))", count: 3, pattern: 0x11 }\n'), { backend: b, filters, settings, testDir });
    expect(b.calls[0]!.stdin).toBe('writev -P 0x11 0 65536\nwritev -P 0x11 131072 65536\nwritev -P 0x11 262144 65536\n');
    expect(b.calls[0]!.args.slice(-3)).toEqual(['-f', 'qcow2', `${testDir}/t.qcow2`]);
    expect(out.transcript).toBe('QA output created by 900\n=== IO: pattern 0x11\nwrote 65536/65536 bytes at offset 0\n*** done\n');
  });

  it('make_test_img builds _make_test_img\'s command line from IMGOPTS, -o, CLUSTER_SIZE, -b and -F', async () => {
    const b = new ScriptedBackend();
    const steps = [
      '  - set: { IMGOPTS: "compat=1.1", CLUSTER_SIZE: 512 }',
      '  - make_test_img: 64M',
      '    opts: lazy_refcounts=on',
      '    backing: $TEST_IMG.base',
      '    backing_fmt: $IMGFMT',
      '  - make_test_img: { size: 0, fmt: raw, imgopts: "", image: $TEST_IMG.raw }',
      '',
    ].join('\n');
    await runScenario(scenario(steps), { backend: b, filters, settings, testDir });
    expect(b.calls[0]!.args).toEqual(['create', '-f', 'qcow2', '-o', 'compat=1.1,lazy_refcounts=on,cluster_size=512', '-b', `${testDir}/t.qcow2.base`, `${testDir}/t.qcow2`, '-F', 'qcow2', '64M']);
    expect(b.calls[1]!.args).toEqual(['create', '-f', 'raw', `${testDir}/t.qcow2.raw`, '0']);
  });

  it('check_test_img and img_info take extra filters after their own', async () => {
    const b = new ScriptedBackend();
    b.runs = [
      () => ({ exitCode: 0, merged: 'Repairing cluster 1 refcount=1 reference=0\nRepairing other\nNo errors were found on the image.\n', stdout: '', stderr: '' }),
      (inv) => ({ exitCode: 0, merged: `image: ${inv.args[1]}\nbacking file: b (actual path: ${testDir}/b)\ndisk size: 1\n`, stdout: '', stderr: '' }),
    ];
    const steps = "  - check_test_img:\n      args: [-r, all]\n      filters: [{ grep: { regex: '^Repairing cluster.*refcount=1 reference=0', invert: true } }]\n  - img_info:\n      filters: [{ grep: { regex: '^backing file:' } }]\n";
    const out = await runScenario(scenario(steps), { backend: b, filters, settings, testDir });
    expect(b.calls[1]!.args).toEqual(['info', `${testDir}/t.qcow2`]);
    expect(out.transcript).toBe('QA output created by 900\nRepairing other\nNo errors were found on the image.\nbacking file: b (actual path: TEST_DIR/b)\n*** done\n');
  });
});

describe('file steps: poke, peek, mkdir, file_size, qcow2', () => {
  it('poke_file writes printf-escaped bytes in place; poke_file_be/le write integers; peek reads them back', async () => {
    const b = new ScriptedBackend();
    fs.writeFileSync(path.join(testDir, 't.qcow2'), Buffer.alloc(16));
    const steps = [
      "  - poke_file: { file: $TEST_IMG, offset: 2, data: '\\xff\\x01\\x7f' }",
      '  - poke_file_be: { file: $TEST_IMG, offset: 8, size: 4, value: 0x12345678 }',
      '  - poke_file_le: { file: $TEST_IMG, offset: 12, size: 2, value: 65534 }',
      '  - peek_file_be: { file: $TEST_IMG, offset: 2, size: 3 }',
      '  - echo',
      '  - peek_file_le: { file: $TEST_IMG, offset: 12, size: 2, into: le }',
      '  - echo: "le=$le"',
      '',
    ].join('\n');
    const out = await runScenario(scenario(steps), { backend: b, filters, settings, testDir });
    expect([...fs.readFileSync(path.join(testDir, 't.qcow2'))]).toEqual([0, 0, 0xff, 1, 0x7f, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0xfe, 0xff, 0, 0]);
    expect(out.transcript).toBe(`QA output created by 900\n${0xff017f}\nle=65534\n*** done\n`);
  });

  it('mkdir, file_size into and allocated size', async () => {
    const b = new ScriptedBackend();
    const out = await runScenario(scenario('  - mkdir: $TEST_DIR/sub\n  - mkdir: $TEST_DIR/sub\n  - truncate: { file: $TEST_DIR/sub/f, size: "$((3 * 512))" }\n  - file_size: { file: $TEST_DIR/sub/f, into: n }\n  - echo: "n=$n"\n  - file_size: { file: $TEST_DIR/sub/f, allocated: true }\n'), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe(`QA output created by 900\nmkdir: cannot create directory '${testDir}/sub': File exists\nn=1536\n0\n*** done\n`);
  });

  it('qcow2 dumps and edits a header as qcow2.py does', async () => {
    const b = new ScriptedBackend();
    const header = Buffer.alloc(65536);
    const fields: [number, number, bigint][] = [[0, 4, 0x514649fbn], [4, 4, 3n], [20, 4, 16n], [24, 8, 67108864n], [36, 4, 1n], [40, 8, 0x30000n], [48, 8, 0x10000n], [56, 4, 1n], [96, 4, 4n], [100, 4, 112n]];
    for (const [at, width, v] of fields) width === 4 ? header.writeUInt32BE(Number(v), at) : header.writeBigUInt64BE(v, at);
    fs.writeFileSync(path.join(testDir, 't.qcow2'), header);
    const steps = "  - qcow2: [set-feature-bit, incompatible, 1]\n  - qcow2: [add-header-ext, '0x12345678', hello]\n  - qcow2: [set-header, nb_snapshots, '0x2']\n  - qcow2: [dump-header]\n  - qcow2: [set-header, nope, 1]\n  - exit_status: { 1: failed }\n";
    const out = await runScenario(scenario(steps), { backend: b, filters, settings, testDir });
    expect(out.transcript).toContain('nb_snapshots              2\n');
    expect(out.transcript).toContain('incompatible_features     [1]\ncompatible_features       []\n');
    expect(out.transcript).toContain("header_length             112\n\nHeader extension:\nmagic                     0x12345678 (<unknown>)\nlength                    5\ndata                      'hello'\n\n");
    expect(out.transcript).toContain("'nope' is not a known header field\nfailed\n");
  });

  it('paths built from variables are checked before each step runs', async () => {
    const b = new ScriptedBackend();
    const run = runScenario(scenario('  - echo: x\n    into: up\n  - set: { dir: "$up/../.." }\n  - rm: $TEST_DIR/$dir/victim\n'), { backend: b, filters, settings, testDir });
    await expect(run).rejects.toBeInstanceOf(PathEscapeError);
    await expect(run).rejects.toThrow(/^scenarios\/900\.yaml:7:5: path '.*victim' is refused: it resolves outside TEST_DIR/);
  });

  it('paths from set values are refused before anything runs', async () => {
    const b = new ScriptedBackend();
    const run = runScenario(scenario('  - qemu-img: [info, $TEST_IMG]\n  - set: { up: ".." }\n  - rm: $TEST_DIR/$up/victim\n'), { backend: b, filters, settings, testDir });
    await expect(run).rejects.toBeInstanceOf(PathEscapeError);
    expect(b.calls).toHaveLength(0);
  });
});

describe('retries and per-image filter variables', () => {
  it('retries a failing tool step and keeps only the last output', async () => {
    const b = new ScriptedBackend();
    b.runs = [() => ({ exitCode: 1, merged: 'flaky\n', stdout: '', stderr: '' }), () => ({ exitCode: 0, merged: 'ok\n', stdout: '', stderr: '' })];
    const out = await runScenario(scenario('  - qemu-img: [measure, x]\n    retries: 3\n'), { backend: b, filters, settings, testDir });
    expect(b.calls).toHaveLength(2);
    expect(out.transcript).toBe('QA output created by 900\nok\n*** done\n');
  });

  it("make_test_img's fmt also changes what img_create replaces, as a function's `local IMGFMT` does", async () => {
    const b = new ScriptedBackend();
    b.runs = [(inv) => ({ exitCode: 0, merged: `Formatting '${inv.args[3]}', fmt=raw size=0\n`, stdout: '', stderr: '' })];
    const out = await runScenario(scenario('  - make_test_img: { fmt: raw, size: "0" }\n'), { backend: b, filters, settings, testDir });
    expect(out.transcript).toBe("QA output created by 900\nFormatting 'TEST_DIR/t.qcow2', fmt=IMGFMT size=0\n*** done\n");
  });
});
