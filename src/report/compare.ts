/**
 * Transcript comparison as QEMU's iotests `check` (testrunner.py) does it: both files are read
 * as lines with trailing whitespace stripped (`line.rstrip()`), and a unified diff of those lines
 * decides. Trailing blanks, CRs and a missing final newline therefore never fail a test; a
 * missing or extra blank line does.
 */
import { createTwoFilesPatch } from 'diff';
import pc from 'picocolors';

export function normalizedLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => l.trimEnd());
}

export function transcriptsMatch(expected: string, actual: string): boolean {
  const a = normalizedLines(expected);
  const b = normalizedLines(actual);
  return a.length === b.length && a.every((line, i) => line === b[i]);
}

/** Unified diff (3 lines of context) of the normalized transcripts; '' when they match. */
export function transcriptDiff(expected: string, actual: string, expectedName: string, actualName: string): string {
  if (transcriptsMatch(expected, actual)) return '';
  const join = (lines: string[]): string => lines.map((l) => `${l}\n`).join('');
  const patch = createTwoFilesPatch(expectedName, actualName, join(normalizedLines(expected)), join(normalizedLines(actual)), undefined, undefined, { context: 3 });
  // Drop the "====" banner line diff puts first; keep ---/+++ and the hunks.
  return patch
    .split('\n')
    .filter((line, i) => !(i === 0 && line.startsWith('=')))
    .join('\n');
}

export function colorDiff(diff: string, enabled: boolean): string {
  if (!enabled) return diff;
  const c = pc.createColors(true);
  return diff
    .split('\n')
    .map((line) => {
      if (line.startsWith('+++') || line.startsWith('---')) return c.bold(line);
      if (line.startsWith('@@')) return c.cyan(line);
      if (line.startsWith('+')) return c.green(line);
      if (line.startsWith('-')) return c.red(line);
      return line;
    })
    .join('\n');
}
