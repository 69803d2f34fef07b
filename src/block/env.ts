/**
 * The environment an open happens in: where relative names resolve, which host paths may be
 * touched, where QEMU's stderr warnings go, and the registry of node names (one per process,
 * i.e. per tool invocation or QMP server).
 */
import * as path from 'node:path';
import type { PathPolicy } from '../tools/context.ts';
import type { BlockNode } from './types.ts';
import { BlockOpenError } from './errors.ts';
import { Errno } from '../errno.ts';

export class BlockGraph {
  private readonly named = new Map<string, BlockNode>();
  private counter = 0;

  /** id_generate(ID_BLOCK): "#block" + counter + two digits (random in QEMU, fixed here). */
  generateName(): string {
    const n = this.counter++;
    const rnd = (n * 37 + 11) % 100;
    return `#block${n}${String(rnd).padStart(2, '0')}`;
  }

  get(name: string): BlockNode | undefined {
    return this.named.get(name);
  }

  has(name: string): boolean {
    return this.named.has(name);
  }

  add(node: BlockNode): void {
    if (this.named.has(node.nodeName)) {
      throw new BlockOpenError(`Duplicate nodes with node-name='${node.nodeName}'`);
    }
    this.named.set(node.nodeName, node);
  }

  remove(node: BlockNode): void {
    if (this.named.get(node.nodeName) === node) this.named.delete(node.nodeName);
  }

  nodes(): BlockNode[] {
    return [...this.named.values()];
  }
}

export interface OpenEnv {
  /** Relative host paths resolve against this directory. */
  cwd: string;
  pathPolicy?: PathPolicy;
  graph: BlockGraph;
  /** Text QEMU prints to stderr during open (the raw probing WARNING), verbatim. */
  stderr(text: string): void;
  /** Text drivers printf() to stdout (blkdebug's suspend/resume lines); dropped when absent. */
  stdout?(text: string): void;
  /** warn_report(): "<prog>: warning: <msg>" is formed by the caller. */
  warn?(message: string): void;
  /** error_report(): "<prog>: <msg>" is formed by the caller (e.g. failures at close). */
  report?(message: string): void;
}

/** The absolute host path for a name as QEMU would open it from `cwd`. */
export function hostPath(env: OpenEnv, name: string): string {
  return path.resolve(env.cwd, name);
}

/** Check the path policy; refusals become open errors naming the file. */
export function checkPath(env: OpenEnv, name: string, purpose: 'read' | 'write' | 'create' | 'delete'): string {
  const abs = hostPath(env, name);
  if (env.pathPolicy) {
    try {
      env.pathPolicy.check(abs, purpose);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new BlockOpenError(`Could not open '${name}': ${reason}`, Errno.EACCES);
    }
  }
  return abs;
}
