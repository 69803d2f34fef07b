/**
 * Differential runs of qemu-img command sequences: each sequence runs in a fresh directory
 * once with Debian's qemu-img 7.2 and once with the built-in qemu-img (in-process through
 * qemuImgMain, the function `qtest qemu-img` calls, or through the drop-in CLI itself), and
 * every step's stdout, stderr and exit code are compared. Helper steps (qemu-io writes, file creation) use the same real tool on
 * both sides, so only qemu-img's behaviour differs.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RecordingSink } from '../../src/tools/output.ts';
import { qemuImgMain } from '../../src/tools/qemu-img/main.ts';
import { QEMU_IMG, QEMU_IO, applyFileStep, digest, type FileStep } from './harness.ts';

export { QEMU_IMG, QEMU_IO, haveQemu } from './harness.ts';

export type Step =
  /** qemu-img arguments: compared between the real tool and ours. */
  | { img: string[] }
  /** qemu-io arguments, run with the real qemu-io on both sides (setup). */
  | { io: string[] }
  | FileStep;

export interface Sequence {
  name: string;
  steps: Step[];
  /** Also compare the md5 of every file left in the directory. */
  compareFiles?: boolean;
}

export interface StepResult {
  args: string;
  exit: number;
  stdout: string;
  stderr: string;
}

/**
 * iotests' timing filter: run times of bench and qemu-io statistics, and the creation
 * times of internal snapshots (taken at different moments on the two sides).
 */
export function timingFilter(text: string): string {
  return text
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, 'yyyy-mm-dd hh:mm:ss')
    .replace(/"date-(sec|nsec)": \d+/g, '"date-$1": X')
    .replace(/Run completed in [0-9.]+ seconds\./g, 'Run completed in X seconds.')
    .replace(/[0-9]+ ops; [0-9:.]+ (sec )?\([0-9.inf]+ [A-Za-z]+\/sec and [0-9.inf]+ ops\/sec\)/g, 'X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)');
}

function runReal(tool: string, args: string[], cwd: string): StepResult {
  const r = spawnSync(tool, args, { cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { args: args.join(' '), exit: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const QTEST_BIN = path.resolve(import.meta.dirname, '../../bin/qtest.js');

/** The drop-in CLI as a user runs it: `node bin/qtest.js qemu-img ARGS`. */
function runOursCli(args: string[], cwd: string): StepResult {
  const r = spawnSync(process.execPath, [QTEST_BIN, 'qemu-img', ...args], { cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { args: args.join(' '), exit: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function runOurs(args: string[], cwd: string, viaCli = false): Promise<StepResult> {
  if (viaCli) return runOursCli(args, cwd);
  const sink = new RecordingSink();
  const exit = await qemuImgMain(args, { out: sink, cwd, env: { ...process.env, LC_ALL: 'C' } });
  sink.flushStdout();
  return { args: args.join(' '), exit, stdout: sink.text('stdout'), stderr: sink.text('stderr') };
}

async function runSide(seq: Sequence, dir: string, ours: boolean, viaCli: boolean): Promise<{ results: StepResult[]; files: Record<string, string> }> {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  const results: StepResult[] = [];
  for (const step of seq.steps) {
    if ('img' in step) {
      const r = ours ? await runOurs(step.img, dir, viaCli) : runReal(QEMU_IMG, step.img, dir);
      results.push({ ...r, stdout: timingFilter(r.stdout), stderr: timingFilter(r.stderr) });
    } else if ('io' in step) {
      const r = runReal(QEMU_IO, step.io, dir);
      results.push({ ...r, args: `[qemu-io] ${r.args}`, stdout: timingFilter(r.stdout), stderr: timingFilter(r.stderr) });
    } else {
      applyFileStep(dir, step);
    }
  }
  return { results, files: seq.compareFiles ? digest(dir) : {} };
}

/** Runs a sequence on both sides in the same directory (paths end up in image headers). */
export async function runDifferential(
  seq: Sequence,
  viaCli = false,
): Promise<{ real: StepResult[]; ours: StepResult[]; realFiles: Record<string, string>; ourFiles: Record<string, string> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-img-'));
  try {
    const real = await runSide(seq, dir, false, false);
    const ours = await runSide(seq, dir, true, viaCli);
    return { real: real.results, ours: ours.results, realFiles: real.files, ourFiles: ours.files };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
