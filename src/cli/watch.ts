/**
 * `qtest run --watch`: after the first run, rerun a scenario whenever its YAML file or one of its
 * expected transcripts changes (saved `.bad` files are ignored). New scenario files that match
 * the selection's patterns join in. Ends on SIGINT/SIGTERM with status 0.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { globToRegExp } from '../runner/project.ts';

export interface WatchOptions {
  /** Scenarios selected by the first run. */
  ids: readonly string[];
  /** The run's ID/glob arguments; empty = every scenario. */
  patterns: readonly string[];
  scenariosDir: string;
  expectedDir: string;
  log: (text: string) => void;
  rerun: (ids: string[]) => Promise<void>;
  /** Milliseconds to wait for more changes before rerunning (editors save in bursts). */
  debounceMs?: number;
}

const EXPECTED_NAME = /^(.+?)\.out(?:\.[a-z][a-z0-9]*)?(?:@\d+\.\d+)?$/;

/** The scenario id a changed file belongs to, or null. */
export function idForChange(dir: 'scenarios' | 'expected', name: string): string | null {
  if (dir === 'scenarios') return name.endsWith('.yaml') ? name.slice(0, -'.yaml'.length) : null;
  if (name.endsWith('.bad')) return null;
  const m = EXPECTED_NAME.exec(name);
  return m ? m[1]! : null;
}

export function watchScenarios(opts: WatchOptions): Promise<number> {
  const selected = new Set(opts.ids);
  const globs = opts.patterns.map((p) => globToRegExp(/\.ya?ml$/.test(p) ? path.basename(p).replace(/\.ya?ml$/, '') : p));
  const wanted = (id: string): boolean => selected.has(id) || (globs.length === 0 ? true : globs.some((g) => g.test(id)));
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const flush = (): void => {
    timer = undefined;
    if (running) return;
    const ids = [...pending].filter((id) => fs.existsSync(path.join(opts.scenariosDir, `${id}.yaml`)));
    pending.clear();
    if (ids.length === 0) return;
    for (const id of ids) selected.add(id);
    opts.log(`\nchanged: ${ids.join(', ')}\n`);
    running = opts.rerun(ids).finally(() => {
      running = undefined;
      opts.log('watching for changes (Ctrl-C to stop)\n');
      if (pending.size > 0) flush();
    });
  };

  const onChange = (dir: 'scenarios' | 'expected', name: string | null): void => {
    if (!name) return;
    const id = idForChange(dir, name);
    if (id === null || !wanted(id)) return;
    pending.add(id);
    if (timer) clearTimeout(timer);
    timer = setTimeout(flush, opts.debounceMs ?? 200);
  };

  const watchers = [
    fs.watch(opts.scenariosDir, (_event, name) => onChange('scenarios', name)),
    ...(fs.existsSync(opts.expectedDir) ? [fs.watch(opts.expectedDir, (_event, name) => onChange('expected', name))] : []),
  ];
  opts.log('watching for changes (Ctrl-C to stop)\n');

  return new Promise((resolve) => {
    const stop = (): void => {
      for (const w of watchers) w.close();
      if (timer) clearTimeout(timer);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void (running ?? Promise.resolve()).then(() => resolve(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
