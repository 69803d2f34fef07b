/** Where the project's folders are: runner.config.ts paths are relative to the repository root. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import config from '../../runner.config.ts';
import type { RunnerConfig } from '../../runner.config.ts';
import { ValidationError } from '../scenario/location.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import type { Scenario } from '../scenario/types.ts';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ProjectPaths {
  scenariosDir: string;
  expectedDir: string;
  filtersDir: string;
  testDirRoot: string;
  stateDir: string;
}

export function projectPaths(cfg: RunnerConfig = config, root = PROJECT_ROOT): ProjectPaths {
  return {
    scenariosDir: path.resolve(root, cfg.scenariosDir),
    expectedDir: path.resolve(root, cfg.expectedDir),
    filtersDir: path.resolve(root, cfg.filtersDir),
    testDirRoot: path.resolve(root, cfg.testDirRoot),
    stateDir: path.resolve(root, cfg.stateDir),
  };
}

export { config };

/** Scenario ids in the folder, numbers first in numeric order, then names. */
export function listScenarioIds(scenariosDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(scenariosDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.yaml'))
    .map((n) => n.slice(0, -'.yaml'.length))
    .sort(compareIds);
}

export function compareIds(a: string, b: string): number {
  const na = /^\d+$/.test(a) ? Number(a) : NaN;
  const nb = /^\d+$/.test(b) ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  if (!Number.isNaN(na)) return -1;
  if (!Number.isNaN(nb)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A glob (`*`, `?`, `[...]`) over scenario ids. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const close = glob.indexOf(']', i + 1);
      if (close < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, close).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = close;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export class SelectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SelectionError';
  }
}

/** Resolves `ID|glob|path.yaml` arguments to scenario ids (all when none are given). */
export function selectIds(patterns: readonly string[], scenariosDir: string): string[] {
  const all = listScenarioIds(scenariosDir);
  if (patterns.length === 0) return all;
  const chosen = new Set<string>();
  for (const p of patterns) {
    const asFile = /\.ya?ml$/.test(p) ? path.basename(p).replace(/\.ya?ml$/, '') : p;
    const re = globToRegExp(asFile);
    const hits = all.filter((id) => re.test(id));
    if (hits.length === 0) throw new SelectionError(`no scenario matches '${p}' in ${path.relative(process.cwd(), scenariosDir) || '.'}`);
    for (const h of hits) chosen.add(h);
  }
  return all.filter((id) => chosen.has(id));
}

/** Loads the scenarios, collecting every validation problem of every file. */
export function loadScenarios(ids: readonly string[], scenariosDir: string, filterNames: ReadonlySet<string>): Scenario[] {
  const out: Scenario[] = [];
  const problems: ValidationError[] = [];
  for (const id of ids) {
    try {
      out.push(loadScenarioFile(displayPath(path.join(scenariosDir, `${id}.yaml`)), { filterNames }));
    } catch (err) {
      if (err instanceof ValidationError) problems.push(err);
      else throw err;
    }
  }
  if (problems.length > 0) throw new ValidationError(problems.flatMap((p) => p.diagnostics));
  return out;
}

/** A path as messages show it: relative to the working directory when below it. */
export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}
