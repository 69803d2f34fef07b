/**
 * Runs a drop-in case (tests/robustness/dropin-cases.ts) through qtest's tools in-process or
 * through the real QEMU binary, in a fresh directory with t.qcow2 and r.raw, and normalizes
 * what differs between runs (the directory, timings).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RecordingSink } from '../../src/tools/output.ts';
import { qemuImgMain } from '../../src/tools/qemu-img/main.ts';
import { qemuIoMain } from '../../src/tools/qemu-io/main.ts';
import type { DropinCase } from './dropin-cases.ts';

export interface DropinResult {
  exit: number | null;
  stdout: string;
  stderr: string;
}

export async function freshDir(root: string, name: string): Promise<string> {
  const dir = path.join(root, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const args of [
    ['create', '-q', '-f', 'qcow2', 't.qcow2', '1M'],
    ['create', '-q', '-f', 'raw', 'r.raw', '1M'],
  ]) {
    const out = new RecordingSink();
    if ((await qemuImgMain(args, { out, cwd: dir, env: {} })) !== 0) throw new Error(`setup failed: ${out.text('stderr')}`);
  }
  return dir;
}

export function normalize(text: string, dir: string): string {
  return text.split(dir).join('TEST_DIR').replace(/^.*ops\/sec\)$/gm, 'TIMING');
}

export async function runBuiltin(c: DropinCase, dir: string): Promise<DropinResult> {
  const out = new RecordingSink();
  const main = c.tool === 'qemu-img' ? qemuImgMain : qemuIoMain;
  const exit = await main(c.args, { out, cwd: dir, env: {} });
  out.flushStdout();
  return { exit, stdout: normalize(out.text('stdout'), dir), stderr: normalize(out.text('stderr'), dir) };
}

export function runReal(c: DropinCase, dir: string): DropinResult {
  const r = spawnSync(c.tool, c.args, { cwd: dir, encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
  return { exit: r.status, stdout: normalize(r.stdout ?? '', dir), stderr: normalize(r.stderr ?? '', dir) };
}

export function tempRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-dropin-'));
}
