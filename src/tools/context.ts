import type { OutputSink } from './output.ts';

/**
 * Decides whether a tool may touch a host path. Scenario runs confine every file to the
 * scenario's TEST_DIR; the drop-in CLIs allow everything the real tools would.
 * check() throws a PathRefusedError naming the path when it is not allowed.
 */
export interface PathPolicy {
  check(absolutePath: string, purpose: 'read' | 'write' | 'create' | 'delete'): void;
}

export class PathRefusedError extends Error {
  readonly path: string;
  constructor(path: string, reason: string) {
    super(`refusing to access '${path}': ${reason}`);
    this.name = 'PathRefusedError';
    this.path = path;
  }
}

/** Everything a tool front-end (qemu-img, qemu-io, the QMP server) gets from its caller. */
export interface ToolContext {
  out: OutputSink;
  /** Relative file names resolve against this directory, as in the real process. */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Absent in drop-in mode. */
  pathPolicy?: PathPolicy;
}

/** A tool's entry point: argv without the program name; resolves to the exit status. */
export type ToolMain = (argv: string[], ctx: ToolContext) => Promise<number>;
