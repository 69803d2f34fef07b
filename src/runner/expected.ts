/**
 * Which expected transcript a run compares with. Besides `expected/NNN.out`, a scenario may
 * have variants for an image format and/or a QEMU version:
 *
 *   NNN.out              the transcript (recorded from the reference QEMU, 7.2)
 *   NNN.out.FMT          for image format FMT only (iotests' own convention, e.g. 178.out.qcow2)
 *   NNN.out@X.Y          for QEMU X.Y and later
 *   NNN.out.FMT@X.Y      both
 *
 * Selection for format F and QEMU version V: if any file names F, only those naming F take
 * part, else only those naming no format; among them the one with the highest X.Y <= V wins,
 * a file without @X.Y counting as the oldest. No file → no expected transcript.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ExpectedVariant {
  file: string;
  fmt?: string;
  /** [major, minor]; absent for the unversioned file. */
  since?: [number, number];
}

const VARIANT = /^(.+?)\.out(?:\.([a-z][a-z0-9]*))?(?:@(\d+)\.(\d+))?$/;
/** Suffixes that are not formats (saved actual transcripts). */
const NOT_FORMATS = new Set(['bad']);

export function parseVersion(text: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function cmp(a: [number, number], b: [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}

/** The variants of one scenario present in the expected folder. */
export function listVariants(expectedDir: string, id: string): ExpectedVariant[] {
  let names: string[];
  try {
    names = fs.readdirSync(expectedDir);
  } catch {
    return [];
  }
  const out: ExpectedVariant[] = [];
  for (const name of names) {
    const m = VARIANT.exec(name);
    if (!m || m[1] !== id || (m[2] && NOT_FORMATS.has(m[2]))) continue;
    out.push({
      file: path.join(expectedDir, name),
      ...(m[2] ? { fmt: m[2] } : {}),
      ...(m[3] !== undefined ? { since: [Number(m[3]), Number(m[4])] as [number, number] } : {}),
    });
  }
  return out;
}

/** The variant a run with format `fmt` on QEMU `version` compares with (see the file comment). */
export function selectVariant(variants: readonly ExpectedVariant[], fmt: string, version: string): ExpectedVariant | undefined {
  const v = parseVersion(version) ?? [Number.MAX_SAFE_INTEGER, 0];
  const forFormat = variants.filter((x) => x.fmt === fmt);
  const pool = forFormat.length > 0 ? forFormat : variants.filter((x) => x.fmt === undefined);
  let best: ExpectedVariant | undefined;
  for (const x of pool) {
    if (x.since && cmp(x.since, v) > 0) continue;
    if (!best || (x.since && (!best.since || cmp(x.since, best.since) > 0))) best = x;
  }
  return best;
}

/**
 * Where `--accept` writes: the selected file when the run is on the reference QEMU (or no file
 * exists yet); on another QEMU version a new `@X.Y` variant next to the selected one, so the
 * reference transcript is never overwritten by another version's output.
 */
export function acceptTarget(expectedDir: string, id: string, selected: ExpectedVariant | undefined, version: string, reference: string): string {
  const v = parseVersion(version);
  const ref = parseVersion(reference);
  const fmtPart = selected?.fmt ? `.${selected.fmt}` : '';
  if (!selected) return path.join(expectedDir, `${id}.out`);
  if (!v || !ref || cmp(v, ref) === 0) return selected.file;
  return path.join(expectedDir, `${id}.out${fmtPart}@${v[0]}.${v[1]}`);
}

/** The variant's name relative to the expected folder, for messages. */
export function variantName(v: ExpectedVariant): string {
  return path.basename(v.file);
}
