/**
 * Running the commands under test: wall time of the whole process (start-up included, which
 * is fair for a drop-in tool) and its peak resident set size, read from GNU time's %M when
 * /usr/bin/time exists.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Command {
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
}

export interface Timed {
  seconds: number;
  /** Peak RSS in KiB, or null without GNU time. */
  peakRssKiB: number | null;
  /** User + system CPU seconds of the process and its children, or null without GNU time. */
  cpuSeconds: number | null;
  stdout: string;
  stderr: string;
  status: number;
}

const GNU_TIME = '/usr/bin/time';
const hasGnuTime = fs.existsSync(GNU_TIME);
const rssFile = path.join(os.tmpdir(), `qtest-bench-rss-${process.pid}.txt`);

export function describe(cmd: Command): string {
  return cmd.argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Run cmd once, timed; a nonzero exit status is returned, not thrown. */
export function timeCommand(cmd: Command): Timed {
  const argv = hasGnuTime ? [GNU_TIME, '-f', '%M %U %S', '-o', rssFile, ...cmd.argv] : cmd.argv;
  const start = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: cmd.cwd,
    env: { ...process.env, ...cmd.env },
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.error) throw new Error(`cannot run ${describe(cmd)}: ${r.error.message}`);
  let peakRssKiB: number | null = null;
  let cpuSeconds: number | null = null;
  if (hasGnuTime) {
    // GNU time writes "Command exited with non-zero status N" before the numbers on failures.
    const lines = fs.readFileSync(rssFile, 'utf8').trim().split('\n');
    const [kib, user, sys] = (lines[lines.length - 1] ?? '').split(' ').map(Number);
    if (Number.isFinite(kib)) peakRssKiB = kib!;
    if (Number.isFinite(user) && Number.isFinite(sys)) cpuSeconds = user! + sys!;
  }
  return { seconds, peakRssKiB, cpuSeconds, stdout: r.stdout, stderr: r.stderr, status: r.status ?? 128 };
}

export class CommandError extends Error {}

/** Run a setup or verification command; it must succeed. */
export function runChecked(cmd: Command): string {
  const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), {
    cwd: cmd.cwd,
    env: { ...process.env, ...cmd.env },
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
  });
  if (r.error) throw new CommandError(`cannot run ${describe(cmd)}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new CommandError(`${describe(cmd)} exited with ${r.status}:\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

export function cleanupRssFile(): void {
  fs.rmSync(rssFile, { force: true });
}
