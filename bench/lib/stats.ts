/** Summary statistics of one side's counted runs. */
export interface Summary {
  /** Every counted run, in seconds, in the order they ran. */
  runs: number[];
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: how far apart the fastest and slowest counted runs are. */
  spread: number;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(runs: number[]): Summary {
  const m = median(runs);
  const min = Math.min(...runs);
  const max = Math.max(...runs);
  return { runs, median: m, min, max, spread: m > 0 ? (max - min) / m : 0 };
}
