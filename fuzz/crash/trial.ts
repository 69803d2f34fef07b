/**
 * One crash-consistency trial, seen from the parent: start the writer (fuzz/crash/writer.ts),
 * let it die (it kills itself at a planned storage call, or the parent sends SIGKILL at a
 * random moment), then judge what is left with real QEMU:
 *   - `qemu-img check` finds no corruption (exit 0, or 3 for leaks only);
 *   - `qemu-img check -r leaks` repairs the leaks (exit 0, and a second check is clean);
 *   - the guest disk (`qemu-img convert -O raw`) holds every operation acknowledged by the last
 *     completed flush, and nothing that no operation wrote;
 *   - every snapshot created before that flush is listed, and each listed snapshot reads back
 *     as the disk was when it was taken.
 * Without qemu-img, qtest's own tools stand in (in-process), so CI without QEMU still runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordingSink } from '../../src/tools/output.ts';
import { qemuImgMain } from '../../src/tools/qemu-img/main.ts';
import { rng } from '../rng.ts';
import { diskAtSnapshot, planTrial, verifyDisk } from './plan.ts';
import type { CrashMode, TrialPlan } from './plan.ts';

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'writer.ts');

export interface TrialResult {
  index: number;
  seed: number;
  mode: CrashMode;
  clusterSize: number;
  ops: number;
  /** How it ended: self-kill at a storage call, parent SIGKILL, it finished first, or it failed. */
  end: 'self-kill' | 'sigkill' | 'finished' | 'failed';
  /** Operations acknowledged by the last completed flush, and operations started. */
  acked: number;
  started: number;
  /** Flushes acknowledged, and data operations acknowledged by them (verified after the crash). */
  flushesAcked: number;
  writesVerified: number;
  checkExit: number | null;
  repaired: boolean;
  /** Killed inside snapshot creation with only COPIED-flag errors (see runTrial), repaired by -r all. */
  copiedWindow: boolean;
  snapshotsVerified: number;
  problems: string[];
  ms: number;
}

interface Tool {
  (args: string[], cwd: string): Promise<{ exit: number | null; stdout: string; stderr: string }>;
}

const realQemuImg: Tool = async (args, cwd) => {
  const r = spawnSync('qemu-img', args, { cwd, encoding: 'buffer', maxBuffer: 256 << 20, timeout: 60_000 });
  return { exit: r.status, stdout: r.stdout.toString('latin1'), stderr: r.stderr.toString() };
};

const builtinQemuImg: Tool = async (args, cwd) => {
  const out = new RecordingSink();
  const exit = await qemuImgMain(args, { out, cwd, env: {} });
  out.flushStdout();
  return { exit, stdout: out.text('stdout'), stderr: out.text('stderr') };
};

function runWriter(dir: string, plan: TrialPlan, wallKillSeed: number): Promise<{ end: TrialResult['end']; acked: number; started: number; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', WRITER, dir, String(plan.seed), plan.mode], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let acked = 0;
    let started = 0;
    let done = false;
    let killedByParent = false;
    let buf = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('S ')) started = Number(line.slice(2)) + 1;
        else if (line.startsWith('A ')) acked = Number(line.slice(2));
        else if (line.startsWith('D')) done = true;
        else if (line === 'R' && plan.selfKillAtCall === null) {
          // A random moment within the run: a few ms per operation on this engine.
          const delay = Math.floor(rng(wallKillSeed)() * plan.ops.length * 0.25);
          setTimeout(() => {
            if (child.exitCode === null && child.signalCode === null) {
              killedByParent = true;
              child.kill('SIGKILL');
            }
          }, delay);
        }
      }
    });
    child.on('close', (code, signal) => {
      // A kill that arrives after "D" (while the process exits) changes nothing.
      const end: TrialResult['end'] = done ? 'finished' : killedByParent ? 'sigkill' : signal === 'SIGKILL' ? 'self-kill' : 'failed';
      resolve({ end, acked, started, stderr: signal && end === 'failed' ? `killed by ${signal}\n${stderr}` : stderr, code });
    });
  });
}

export async function runTrial(root: string, index: number, seed: number, qemu: boolean, keepFailed: string | null, mode?: CrashMode): Promise<TrialResult> {
  const t0 = performance.now();
  const plan = planTrial(seed, mode);
  const dir = path.join(root, `t${index}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const tool = qemu ? realQemuImg : builtinQemuImg;
  const problems: string[] = [];
  const w = await runWriter(dir, plan, seed ^ 0x5bd1e995);
  if (w.end === 'failed') problems.push(`writer failed (exit ${w.code}): ${w.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  if (w.end !== 'failed' && w.stderr.trim()) problems.push(`writer printed errors: ${w.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  // A writer killed before the image existed has nothing to judge.
  const exists = fs.existsSync(path.join(dir, 'img.qcow2')) && w.started > 0;
  let checkExit: number | null = null;
  let repaired = false;
  let copiedWindow = false;
  let snapshotsVerified = 0;
  if (exists) {
    const check = await tool(['check', '-f', 'qcow2', 'img.qcow2'], dir);
    checkExit = check.exit;
    const text = `${check.stdout}${check.stderr}`;
    const errors = text.split('\n').filter((l) => l.startsWith('ERROR'));
    const crashOp = plan.ops[w.started - 1];
    if (check.exit === 2 && w.end !== 'finished' && crashOp?.kind === 'snapshot' && errors.length > 0 && errors.every((l) => l.startsWith('ERROR OFLAG_COPIED '))) {
      // Creating a snapshot raises refcounts to 2 and clears the COPIED flags of the active
      // tables: two places, so a crash between them leaves one changed and not the other, and
      // check counts every such entry as a corruption. No order avoids it (QEMU has the same
      // window); nothing is lost and `check -r all` makes the image clean.
      copiedWindow = true;
      const fix = await tool(['check', '-f', 'qcow2', '-r', 'all', 'img.qcow2'], dir);
      const again = await tool(['check', '-f', 'qcow2', 'img.qcow2'], dir);
      repaired = fix.exit === 0 && again.exit === 0;
      if (!repaired) problems.push(`snapshot crash window: check -r all exit ${fix.exit}, then check exit ${again.exit}`);
    } else if (check.exit !== 0 && check.exit !== 3) {
      problems.push(`qemu-img check exit ${check.exit}: ${text.trim().split('\n').slice(0, 6).join(' | ')}`);
    }
    if (check.exit === 3) {
      const fix = await tool(['check', '-f', 'qcow2', '-r', 'leaks', 'img.qcow2'], dir);
      const again = await tool(['check', '-f', 'qcow2', 'img.qcow2'], dir);
      repaired = fix.exit === 0 && again.exit === 0;
      if (!repaired) problems.push(`check -r leaks exit ${fix.exit}, then check exit ${again.exit}: ${`${again.stdout}${again.stderr}`.trim().split('\n').slice(0, 4).join(' | ')}`);
    }
    const conv = await tool(['convert', '-f', 'qcow2', '-O', 'raw', 'img.qcow2', 'guest.raw'], dir);
    if (conv.exit !== 0) problems.push(`qemu-img convert exit ${conv.exit}: ${conv.stderr.trim()}`);
    else {
      const actual = new Uint8Array(fs.readFileSync(path.join(dir, 'guest.raw')));
      for (const p of verifyDisk(plan, actual, w.acked, w.started)) problems.push(p);
    }
    if (plan.mode === 'snapshot') {
      const list = await tool(['snapshot', '-l', 'img.qcow2'], dir);
      const listed = new Set(
        list.stdout
          .split('\n')
          .map((l) => l.trim().split(/\s+/)[1])
          .filter((n): n is string => !!n && /^s\d+$/.test(n)),
      );
      for (let i = 0; i < w.acked; i++) {
        const op = plan.ops[i]!;
        if (op.kind === 'snapshot' && !listed.has(op.name)) problems.push(`snapshot ${op.name} was acknowledged but is gone`);
      }
      for (const name of listed) {
        const expected = diskAtSnapshot(plan, name);
        const out = `snap-${name}.raw`;
        const c = await tool(['convert', '-f', 'qcow2', '-O', 'raw', '-l', `snapshot.name=${name}`, 'img.qcow2', out], dir);
        if (c.exit !== 0 || !expected) {
          problems.push(`snapshot ${name} does not read back (exit ${c.exit}): ${c.stderr.trim()}`);
          continue;
        }
        const got = fs.readFileSync(path.join(dir, out));
        if (!got.equals(Buffer.from(expected))) {
          let at = 0;
          while (at < expected.length && got[at] === expected[at]) at++;
          problems.push(`snapshot ${name} differs from the disk when it was taken, first at byte ${at}`);
        } else snapshotsVerified++;
      }
    }
  }
  const result: TrialResult = {
    index,
    seed,
    mode: plan.mode,
    clusterSize: plan.clusterSize,
    ops: plan.ops.length,
    end: w.end,
    acked: w.acked,
    started: w.started,
    flushesAcked: plan.ops.slice(0, w.acked).filter((o) => o.kind === 'flush').length,
    writesVerified: exists ? plan.ops.slice(0, w.acked).filter((o) => o.kind !== 'flush' && o.kind !== 'snapshot').length : 0,
    checkExit,
    repaired,
    copiedWindow,
    snapshotsVerified,
    problems,
    ms: performance.now() - t0,
  };
  if (problems.length && keepFailed) {
    const dest = path.join(keepFailed, `crash-trial-${seed}`);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.cpSync(dir, dest, { recursive: true });
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return result;
}
