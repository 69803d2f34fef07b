/** Creates the backend a run asked for; the runner itself only sees the Backend interface. */
import * as path from 'node:path';
import type { RunnerConfig } from '../../runner.config.ts';
import { BackendError, createQemuBackend } from '../backends/qemu.ts';
import type { Backend } from '../backends/types.ts';

export type BackendName = RunnerConfig['defaultBackend'];
export const BACKEND_NAMES: readonly BackendName[] = ['builtin', 'qemu'];

/** Backends whose tools run inside this process; `-j N` gives them N worker threads (pool.ts). */
export const IN_PROCESS_BACKENDS: readonly BackendName[] = ['builtin'];

type BuiltinModule = { createBuiltinBackend?: (config: RunnerConfig) => Backend };

export async function createBackend(name: BackendName, config: RunnerConfig): Promise<Backend> {
  if (name === 'qemu') return createQemuBackend(config.qemu);
  // Loaded lazily (and by a computed specifier) so the runner works before the engine exists.
  const specifier = '../backends/builtin.ts';
  let mod: BuiltinModule;
  try {
    mod = (await import(specifier)) as BuiltinModule;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = err instanceof Error ? err.message : String(err);
    if (code === 'ERR_MODULE_NOT_FOUND' && message.includes('backends/builtin.ts')) throw new BackendError('builtin backend not available');
    throw new BackendError(`builtin backend failed to load: ${message}`);
  }
  if (typeof mod.createBuiltinBackend !== 'function') throw new BackendError('builtin backend not available (src/backends/builtin.ts has no createBuiltinBackend)');
  return mod.createBuiltinBackend(config);
}

/** Basename of the system emulator, which the `qemu` filter calls QEMU_PROG. */
export function qemuProgName(config: RunnerConfig): string {
  return path.basename(config.qemu.system);
}
