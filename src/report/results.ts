/** What a run produced for each scenario, for the console and the machine-readable reporters. */
export type Status = 'pass' | 'fail' | 'skip' | 'error';

export interface ScenarioResult {
  id: string;
  title: string;
  status: Status;
  durationMs: number;
  /** Why it failed, was skipped or errored (one line). */
  message?: string;
  /** Unified diff against the expected transcript, uncoloured. */
  diff?: string;
  /** Where the actual transcript was saved on a mismatch. */
  badFile?: string;
  /** The expected transcript was (re)written by --accept. */
  accepted?: boolean;
}

export interface RunSummary {
  backend: string;
  qemuVersion: string;
  results: ScenarioResult[];
  durationMs: number;
}

export function countByStatus(results: readonly ScenarioResult[]): Record<Status, number> {
  const out: Record<Status, number> = { pass: 0, fail: 0, skip: 0, error: 0 };
  for (const r of results) out[r.status]++;
  return out;
}

/** "N passed, M failed" plus skipped/errored counts when there are any. */
export function summaryLine(results: readonly ScenarioResult[]): string {
  const n = countByStatus(results);
  let line = `${n.pass} passed, ${n.fail} failed`;
  if (n.error > 0) line += `, ${n.error} errored`;
  if (n.skip > 0) line += `, ${n.skip} skipped`;
  return line;
}

/** iotests' "Not run:" line: the skipped scenarios with their reasons, or null when none. */
export function notRunLine(results: readonly ScenarioResult[]): string | null {
  const skipped = results.filter((r) => r.status === 'skip');
  if (skipped.length === 0) return null;
  return `Not run: ${skipped.map((r) => `${r.id} (${r.message ?? 'skipped'})`).join(', ')}`;
}
