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
