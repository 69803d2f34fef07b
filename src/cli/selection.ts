/**
 * The scenario selection `run` and `crosscheck` share: ids or globs (all by default) or the last
 * run's failures, then groups, then a CI shard.
 */
import type { FilterDef } from '../filters/types.ts';
import { loadFilterDir } from '../filters/load.ts';
import { loadScenarios, selectIds } from '../runner/project.ts';
import type { ProjectPaths } from '../runner/project.ts';
import { RunState, parseShard, shard } from '../runner/state.ts';
import type { Scenario } from '../scenario/types.ts';
import { UsageError } from './args.ts';

export interface SelectionRequest {
  patterns: readonly string[];
  include: readonly string[];
  exclude: readonly string[];
  rerunFailed: boolean;
  shard?: string;
}

export interface Selection {
  filters: Map<string, FilterDef>;
  scenarios: Scenario[];
  /** Set when --rerun-failed found nothing to rerun. */
  nothingFailed?: boolean;
}

export function checkShard(text: string | undefined): void {
  if (text !== undefined && !parseShard(text)) throw new UsageError(`--shard needs I/N with 1 <= I <= N, got '${text}'`);
}

/** Throws UsageError, SelectionError or ValidationError. */
export function selectScenarios(req: SelectionRequest, paths: ProjectPaths): Selection {
  const filters = loadFilterDir(paths.filtersDir);
  let ids: string[];
  if (req.rerunFailed) {
    if (req.patterns.length > 0) throw new UsageError('--rerun-failed selects the scenarios itself; give no IDs with it');
    const failed = new RunState(paths.stateDir).failedIds();
    if (failed === undefined) throw new UsageError(`--rerun-failed: no earlier run recorded in ${paths.stateDir}`);
    const present = new Set(selectIds([], paths.scenariosDir));
    ids = failed.filter((id) => present.has(id));
    if (ids.length === 0) return { filters, scenarios: [], nothingFailed: true };
  } else {
    ids = selectIds(req.patterns, paths.scenariosDir);
  }
  let scenarios = loadScenarios(ids, paths.scenariosDir, new Set(filters.keys()));
  scenarios = scenarios.filter((s) => (req.include.length === 0 || s.groups.some((g) => req.include.includes(g))) && !s.groups.some((g) => req.exclude.includes(g)));
  if (req.shard !== undefined) scenarios = shard(scenarios, parseShard(req.shard)!);
  return { filters, scenarios };
}
