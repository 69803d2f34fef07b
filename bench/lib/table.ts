/** Plain-text and Markdown tables for the bench report. */
export interface Column {
  title: string;
  align?: 'left' | 'right';
}

/** A fixed-width text table (what the terminal shows). */
export function textTable(columns: Column[], rows: string[][]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (text: string, i: number): string =>
    columns[i]!.align === 'left' ? text.padEnd(widths[i]!) : text.padStart(widths[i]!);
  const line = (cells: string[]): string => cells.map(cell).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(columns.map((c) => c.title)), rule, ...rows.map(line)].join('\n') + '\n';
}

/** The same table as GitHub Markdown (what the README quotes). */
export function markdownTable(columns: Column[], rows: string[][]): string {
  const head = `| ${columns.map((c) => c.title).join(' | ')} |`;
  const rule = `| ${columns.map((c) => (c.align === 'left' ? '---' : '---:')).join(' | ')} |`;
  return [head, rule, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n';
}

export function seconds(s: number): string {
  if (!Number.isFinite(s)) return '-';
  if (s < 0.1) return `${(s * 1000).toFixed(1)} ms`;
  return `${s.toFixed(3)} s`;
}

export function ratio(r: number): string {
  return Number.isFinite(r) ? r.toFixed(2) : '-';
}

export function percent(p: number): string {
  return Number.isFinite(p) ? `${(p * 100).toFixed(0)}%` : '-';
}

export function mib(kib: number | null): string {
  return kib === null ? '-' : `${(kib / 1024).toFixed(0)} MiB`;
}
