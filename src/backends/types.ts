/**
 * What the runner needs from whatever executes QEMU's tools: the real binaries (backends/qemu)
 * or the in-process engine (backends/builtin). The runner never knows which one it drives.
 */
import type { PathPolicy } from '../tools/context.ts';

export type ToolName = 'qemu-img' | 'qemu-io';

export interface ToolInvocation {
  tool: ToolName;
  /** Arguments after the program name, variables already expanded. */
  args: string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  /**
   * 'merged': stdout and stderr share one descriptor (`2>&1`), result in `merged`.
   * 'separate': two descriptors, results in `stdout` and `stderr`.
   */
  streams: 'merged' | 'separate';
  /** Scenario runs confine file access to TEST_DIR; the builtin backend enforces it in-process. */
  pathPolicy?: PathPolicy;
  /**
   * Text on the program's stdin (`<<EOF`, `cmds | $QEMU_IO`); absent = no input (stdin closed).
   * qemu-io then reads commands from it, printing its `qemu-io> ` prompt before each.
   */
  stdin?: string;
}

export interface ToolRun {
  exitCode: number;
  merged: string;
  stdout: string;
  stderr: string;
}

export interface QmpLaunch {
  /** qemu-system style options, e.g. ['-blockdev', 'file,node-name=data,filename=...']. */
  args: string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  pathPolicy?: PathPolicy;
}

/** A running QMP monitor: text in, lines out, as `_send_qemu_cmd` sees it. */
export interface QmpConnection {
  /** Send text to the monitor (a newline is appended if missing). */
  send(text: string): void;
  /** The next line the monitor printed (no newline), or null after timeoutMs or at EOF. */
  readLine(timeoutMs: number): Promise<string | null>;
  /** SIGKILL semantics: stop at once, discard unread output. */
  kill(): Promise<void>;
}

/**
 * A backend cannot do what a step asks (a feature it does not have). The runner reports the
 * scenario as skipped with this reason, like an iotest's _notrun.
 */
export class BackendUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendUnsupportedError';
  }
}

export interface Backend {
  readonly name: 'builtin' | 'qemu';
  /**
   * Features this backend offers, for scenarios' `requires: { features: [...] }` (e.g. 'qmp').
   * Absent: every feature is assumed to be there.
   */
  features?(): readonly string[];
  runTool(invocation: ToolInvocation): Promise<ToolRun>;
  launchQmp(launch: QmpLaunch): Promise<QmpConnection>;
  /** Version of QEMU this backend behaves as, e.g. "7.2.22". */
  qemuVersion(): Promise<string>;
}
