/**
 * The `qemu` backend: real qemu-img / qemu-io / QMP processes through execa.
 *
 * For `2>&1` the child gets ONE open file (a scratch file) as both stdout and stderr, exactly
 * like a shell redirection: glibc block-buffers stdout on it and writes stderr at once, so the
 * interleaving is the one the iotests see. Separate streams use two pipes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend, QmpConnection, QmpLaunch, ToolInvocation, ToolRun } from './types.ts';

export interface QemuPrograms {
  img: string;
  io: string;
  system: string;
  storageDaemon: string;
  qmpVia: 'storage-daemon' | 'system';
}

/** A QEMU program could not be started at all (missing binary, bad path). */
export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendError';
  }
}

/** What the real binaries offer to scenarios' `requires: { features }`. */
export const QEMU_FEATURES: readonly string[] = ['qmp', 'tool-stdin'];

/**
 * execa and its dependencies are over a hundred modules; the builtin backend never needs them,
 * so they load on the first real process start instead of with the runner.
 */
let execaLoading: Promise<typeof import('execa')> | undefined;
function loadExeca(): Promise<typeof import('execa')> {
  execaLoading ??= import('execa');
  return execaLoading;
}

let scratchCounter = 0;

function scratchFile(): string {
  return path.join(os.tmpdir(), `qtest-${process.pid}-${Date.now().toString(36)}-${scratchCounter++}.out`);
}

function exitStatus(result: { exitCode?: number | undefined; signal?: string | undefined }): number {
  if (typeof result.exitCode === 'number') return result.exitCode;
  const signals = os.constants.signals as Record<string, number>;
  const n = result.signal ? signals[result.signal] : undefined;
  return n ? 128 + n : 1;
}

function notStarted(program: string, result: { code?: string; originalMessage?: string; failed: boolean; exitCode?: number | undefined }): BackendError | null {
  if (result.failed && result.exitCode === undefined && (result.code === 'ENOENT' || result.code === 'EACCES')) {
    return new BackendError(`cannot run ${program}: ${result.code === 'ENOENT' ? 'not found' : 'permission denied'} (set the path in runner.config.ts or the environment)`);
  }
  return null;
}

/** qemu-system options as qemu-storage-daemon spells them; options QSD lacks are refused. */
const QSD_OPTIONS = new Set(['blockdev', 'object', 'chardev', 'export', 'monitor', 'nbd-server', 'pidfile', 'trace']);

export function toStorageDaemonArgs(args: readonly string[]): string[] {
  return args.map((arg) => {
    const m = /^--?([a-z-]+)$/.exec(arg);
    if (!m) return arg;
    if (!QSD_OPTIONS.has(m[1]!)) {
      throw new BackendError(`qemu-storage-daemon has no option '${arg}'; set QTEST_QMP_VIA=system to use qemu-system-x86_64`);
    }
    return `--${m[1]}`;
  });
}

/** Lines from a child's stdout and stderr, in arrival order, as bash `read` hands them out. */
class LineQueue {
  private readonly lines: string[] = [];
  private readonly partial = new Map<string, string>();
  private waiter: (() => void) | null = null;
  private open = 2;

  push(stream: string, chunk: string): void {
    const text = (this.partial.get(stream) ?? '') + chunk;
    const parts = text.split('\n');
    this.partial.set(stream, parts.pop()!);
    this.lines.push(...parts);
    this.wake();
  }

  /** An unterminated last line is dropped, as `while read` does at EOF. */
  end(): void {
    this.open--;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  async next(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.lines.length > 0) return this.lines.shift()!;
      if (this.open <= 0) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

export function createQemuBackend(programs: QemuPrograms): Backend {
  const programFor = (tool: ToolInvocation['tool']): string => (tool === 'qemu-img' ? programs.img : programs.io);

  async function runTool(inv: ToolInvocation): Promise<ToolRun> {
    const { execa } = await loadExeca();
    const program = programFor(inv.tool);
    const input = inv.stdin !== undefined ? { input: inv.stdin } : { stdin: 'ignore' as const };
    const common = { cwd: inv.cwd, env: inv.env, extendEnv: true, reject: false, stripFinalNewline: false, ...input } as const;
    if (inv.streams === 'merged') {
      const file = scratchFile();
      const fd = fs.openSync(file, 'w+', 0o600);
      // execa passes any descriptor number through at run time; its types only list 1 and 2.
      const shared = fd as unknown as 1;
      try {
        const result = await execa(program, inv.args, { ...common, stdout: shared, stderr: shared });
        const failure = notStarted(program, result);
        if (failure) throw failure;
        const merged = fs.readFileSync(file, 'utf8');
        return { exitCode: exitStatus(result), merged, stdout: '', stderr: '' };
      } finally {
        fs.closeSync(fd);
        fs.rmSync(file, { force: true });
      }
    }
    const result = await execa(program, inv.args, { ...common, stdout: 'pipe', stderr: 'pipe', encoding: 'utf8' });
    const failure = notStarted(program, result);
    if (failure) throw failure;
    return { exitCode: exitStatus(result), merged: '', stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
  }

  async function launchQmp(launch: QmpLaunch): Promise<QmpConnection> {
    const { execa } = await loadExeca();
    let program: string;
    let args: string[];
    if (programs.qmpVia === 'storage-daemon') {
      program = programs.storageDaemon;
      args = ['--chardev', 'stdio,id=qtest_qmp', '--monitor', 'qtest_qmp', ...toStorageDaemonArgs(launch.args)];
    } else {
      program = programs.system;
      // iotests' QEMU_OPTIONS use -accel qtest, which Debian's build lacks; -machine none suffices.
      args = ['-nodefaults', '-display', 'none', '-machine', 'none', '-nographic', '-serial', 'none', '-monitor', 'none', '-qmp', 'stdio', ...launch.args];
    }
    const child = execa(program, args, {
      cwd: launch.cwd,
      env: launch.env,
      extendEnv: true,
      reject: false,
      buffer: false,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      encoding: 'utf8',
    });
    const queue = new LineQueue();
    // Node leaves pid unset when the program could not be started (ENOENT, EACCES).
    if (child.pid === undefined) {
      const result = await child;
      throw new BackendError(`cannot run ${program}: ${result.code === 'ENOENT' ? 'not found' : (result.originalMessage ?? 'failed to start')} (set the path in runner.config.ts or the environment)`);
    }
    for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => queue.push(name, chunk));
      stream.on('end', () => queue.end());
      stream.on('error', () => queue.end());
    }
    child.stdin.on('error', () => {
      // QEMU died; reads will report EOF.
    });
    const finished = child.then(
      () => undefined,
      () => undefined,
    );
    return {
      send(text: string): void {
        if (!child.stdin.destroyed) child.stdin.write(text.endsWith('\n') ? text : `${text}\n`);
      },
      readLine(timeoutMs: number): Promise<string | null> {
        return queue.next(timeoutMs);
      },
      async kill(): Promise<void> {
        child.kill('SIGKILL');
        await finished;
      },
    };
  }

  let version: Promise<string> | undefined;
  async function qemuVersion(): Promise<string> {
    version ??= (async () => {
      const { execa } = await loadExeca();
      const result = await execa(programs.img, ['--version'], { reject: false, stdin: 'ignore' });
      const failure = notStarted(programs.img, result);
      if (failure) throw failure;
      const m = /version (\d+\.\d+\.\d+)/.exec(String(result.stdout));
      if (!m) throw new BackendError(`cannot tell the QEMU version from '${programs.img} --version'`);
      return m[1]!;
    })();
    return version;
  }

  return { name: 'qemu', runTool, launchQmp, qemuVersion, features: () => QEMU_FEATURES };
}
