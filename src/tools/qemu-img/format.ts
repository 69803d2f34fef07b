/**
 * qemu-img's output formats, from structured data: check (human/json), map (human/json),
 * info (human/json), snapshot lists and measure. Byte-for-byte as QEMU 7.2 prints them.
 */
import { formatFixed } from '../common/cformat.ts';
import { qdictOrder, toJsonPretty, type JsonObject, type JsonValue } from '../../qmp/json.ts';
import type { CheckResult } from './engine.ts';

// ---------------------------------------------------------------- sizes

/** size_to_str: "%0.3g %sB" with binary prefixes, switching units at 1000. */
export function sizeToStr(value: number): string {
  const suffixes = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
  let exponent = 0;
  const scaled = value / (1000 / 1024);
  if (scaled !== 0) exponent = Math.floor(Math.log2(scaled)) + 1;
  // frexp's exponent: the power of two just above; guard against log2 rounding at exact powers.
  while (scaled >= 2 ** exponent) exponent++;
  while (exponent > 0 && scaled < 2 ** (exponent - 1)) exponent--;
  const i = Math.max(0, Math.trunc((exponent - 1) / 10));
  const div = 2 ** (i * 10);
  return `${formatG3(value / div)} ${suffixes[i]}B`;
}

/** printf("%0.3g"): three significant digits, trailing zeros removed. */
export function formatG3(x: number): string {
  if (x === 0) return '0';
  let exp = Math.floor(Math.log10(Math.abs(x)));
  let rounded = formatFixed(x, Math.max(0, 2 - exp));
  // Rounding may carry into a new digit (999.5 -> 1000): recompute the exponent.
  if (Math.abs(Number(rounded)) >= 10 ** (exp + 1)) {
    exp++;
    rounded = formatFixed(x, Math.max(0, 2 - exp));
  }
  if (exp < -4 || exp >= 3) {
    const m = formatFixed(x / 10 ** exp, 2).replace(/\.?0+$/, '');
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return rounded.includes('.') ? rounded.replace(/\.?0+$/, '') : rounded;
}

// ---------------------------------------------------------------- check

/** ImageCheck as collect_image_check fills it (numbers are int64). */
export type ImageCheck = CheckResult & { filename: string; format: string };

export function formatCheckHuman(c: ImageCheck): string {
  let out = '';
  if (!(c.corruptions || c.leaks || c.checkErrors)) {
    out += 'No errors were found on the image.\n';
  } else {
    if (c.corruptions) {
      out += `\n${c.corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`;
    }
    if (c.leaks) {
      out += `\n${c.leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n`;
    }
    if (c.checkErrors) {
      out += `\n${c.checkErrors} internal errors have occurred during the check.\n`;
    }
  }
  if (c.totalClusters !== 0 && c.allocatedClusters !== 0) {
    const pct = (n: number, d: number) => formatFixed((n * 100.0) / d, 2);
    out +=
      `${c.allocatedClusters}/${c.totalClusters} = ${pct(c.allocatedClusters, c.totalClusters)}% allocated, ` +
      `${pct(c.fragmentedClusters, c.allocatedClusters)}% fragmented, ${pct(c.compressedClusters, c.allocatedClusters)}% compressed clusters\n`;
  }
  if (c.imageEndOffset) out += `Image end offset: ${c.imageEndOffset}\n`;
  return out;
}

/** The "repaired" preamble of check -r in human mode. */
export function formatCheckRepaired(leaksFixed: number, corruptionsFixed: number): string {
  return (
    'The following inconsistencies were found and repaired:\n\n' +
    `    ${leaksFixed} leaked clusters\n` +
    `    ${corruptionsFixed} corruptions\n\n` +
    'Double checking the fixed image now...\n'
  );
}

export function formatCheckJson(c: ImageCheck): string {
  // Optional members are present when non-zero, as collect_image_check sets the has_* flags.
  const m: JsonObject = new Map();
  m.set('filename', c.filename);
  m.set('format', c.format);
  m.set('check-errors', BigInt(c.checkErrors));
  if (c.imageEndOffset !== 0) m.set('image-end-offset', BigInt(c.imageEndOffset));
  if (c.corruptions !== 0) m.set('corruptions', BigInt(c.corruptions));
  if (c.leaks !== 0) m.set('leaks', BigInt(c.leaks));
  if (c.corruptionsFixed !== 0) m.set('corruptions-fixed', BigInt(c.corruptionsFixed));
  if (c.leaksFixed !== 0) m.set('leaks-fixed', BigInt(c.leaksFixed));
  if (c.totalClusters !== 0) m.set('total-clusters', BigInt(c.totalClusters));
  if (c.allocatedClusters !== 0) m.set('allocated-clusters', BigInt(c.allocatedClusters));
  if (c.fragmentedClusters !== 0) m.set('fragmented-clusters', BigInt(c.fragmentedClusters));
  if (c.compressedClusters !== 0) m.set('compressed-clusters', BigInt(c.compressedClusters));
  return `${toJsonPretty(m)}\n`;
}

// ---------------------------------------------------------------- map

export interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
  /** Defined when the range has a valid host offset. */
  offset?: number;
  depth: number;
  present: boolean;
  /** The file holding the data (only with a valid offset). */
  filename?: string;
}

/** entry_mergeable in 7.2. */
export function mapEntryMergeable(curr: MapEntry, next: MapEntry): boolean {
  if (curr.length === 0) return false;
  if (
    curr.zero !== next.zero ||
    curr.data !== next.data ||
    curr.depth !== next.depth ||
    curr.present !== next.present ||
    (curr.filename !== undefined) !== (next.filename !== undefined) ||
    (curr.offset !== undefined) !== (next.offset !== undefined)
  ) {
    return false;
  }
  if (curr.filename !== undefined && curr.filename !== next.filename) return false;
  if (curr.offset !== undefined && curr.offset + curr.length !== next.offset) return false;
  return true;
}

function hex(n: number): string {
  return n === 0 ? '0' : `0x${n.toString(16)}`;
}

/**
 * dump_map_entry for one entry. Human mode may also rewrite `next` (QEMU folds zero and
 * unallocated ranges together there); returns the text, or an error message.
 */
export function formatMapEntry(
  mode: 'human' | 'json',
  e: MapEntry,
  next: MapEntry | null,
  startOffset = 0,
): { text: string } | { error: string } {
  if (mode === 'human') {
    let text = '';
    if (e.data && e.offset === undefined) return { error: 'File contains external, encrypted or compressed clusters.' };
    if (e.data && !e.zero) {
      text = `${hex(e.start).padEnd(16)}${hex(e.length).padEnd(16)}${hex(e.offset ?? 0).padEnd(16)}${e.filename ?? ''}\n`;
    }
    if (next && (!next.data || next.zero)) {
      next.data = false;
      next.zero = true;
    }
    return { text };
  }
  let text =
    `${e.start === startOffset ? '[' : ',\n'}{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth},` +
    ` "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}`;
  if (e.offset !== undefined) text += `, "offset": ${e.offset}`;
  text += '}';
  if (!next) text += ']\n';
  return { text };
}

export const MAP_HUMAN_HEADER = `${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File\n`;

// ---------------------------------------------------------------- snapshots

export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: bigint;
  /** -1 (all ones) when absent. */
  icount: bigint;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** g_date_time_new_from_unix_local + "%Y-%m-%d %H:%M:%S" (the process's local time zone). */
function localDate(sec: number): string {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

export const SNAPSHOT_HEADER = `${'ID'.padEnd(10)}${'TAG'.padEnd(17)}${'VM SIZE'.padStart(8)}${'DATE'.padStart(20)}${'VM CLOCK'.padStart(13)}${'ICOUNT'.padStart(11)}`;

/** bdrv_snapshot_dump for one snapshot (no newline). */
export function formatSnapshotRow(sn: SnapshotInfo): string {
  const secs = sn.vmClockNsec / 1_000_000_000n;
  const clock =
    `${String(secs / 3600n).padStart(2, '0')}:${String((secs / 60n) % 60n).padStart(2, '0')}:` +
    `${String(secs % 60n).padStart(2, '0')}.${String((sn.vmClockNsec / 1_000_000n) % 1000n).padStart(3, '0')}`;
  const icount = sn.icount === -1n || sn.icount === (1n << 64n) - 1n ? '' : sn.icount.toString();
  return `${sn.id.padEnd(9)} ${sn.name.padEnd(16)} ${sizeToStr(sn.vmStateSize).padStart(8)}${localDate(sn.dateSec).padStart(20)}${clock.padStart(13)}${icount.padStart(11)}`;
}

export function formatSnapshotList(list: readonly SnapshotInfo[]): string {
  let out = `Snapshot list:\n${SNAPSHOT_HEADER}\n`;
  for (const sn of list) out += `${formatSnapshotRow(sn)}\n`;
  return out;
}

function snapshotJson(sn: SnapshotInfo): JsonObject {
  const m: JsonObject = new Map();
  m.set('id', sn.id);
  m.set('name', sn.name);
  m.set('vm-state-size', BigInt(sn.vmStateSize));
  m.set('date-sec', BigInt(sn.dateSec));
  m.set('date-nsec', BigInt(sn.dateNsec));
  m.set('vm-clock-sec', sn.vmClockNsec / 1_000_000_000n);
  m.set('vm-clock-nsec', sn.vmClockNsec % 1_000_000_000n);
  if (sn.icount !== -1n && sn.icount !== (1n << 64n) - 1n) m.set('icount', sn.icount);
  return m;
}

// ---------------------------------------------------------------- info

/** ImageInfo as bdrv_query_image_info fills it. */
export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  actualSize?: number;
  dirtyFlag?: boolean;
  encrypted?: boolean;
  clusterSize?: number;
  backingFilename?: string;
  fullBackingFilename?: string;
  backingFilenameFormat?: string;
  snapshots?: SnapshotInfo[];
  /** ImageInfoSpecific: the union tag and its data members in QAPI order. */
  formatSpecific?: { type: string; data: JsonObject };
}

export function imageInfoJson(info: ImageInfo): JsonObject {
  const m: JsonObject = new Map();
  m.set('filename', info.filename);
  m.set('format', info.format);
  if (info.dirtyFlag !== undefined) m.set('dirty-flag', info.dirtyFlag);
  if (info.actualSize !== undefined) m.set('actual-size', BigInt(info.actualSize));
  m.set('virtual-size', BigInt(info.virtualSize));
  if (info.clusterSize !== undefined) m.set('cluster-size', BigInt(info.clusterSize));
  if (info.encrypted) m.set('encrypted', true);
  if (info.backingFilename !== undefined) m.set('backing-filename', info.backingFilename);
  if (info.fullBackingFilename !== undefined) m.set('full-backing-filename', info.fullBackingFilename);
  if (info.backingFilenameFormat !== undefined) m.set('backing-filename-format', info.backingFilenameFormat);
  if (info.snapshots && info.snapshots.length > 0) m.set('snapshots', info.snapshots.map(snapshotJson));
  if (info.formatSpecific) {
    m.set('format-specific', new Map<string, JsonValue>([['type', info.formatSpecific.type], ['data', info.formatSpecific.data]]));
  }
  return m;
}

export function formatInfoJson(info: ImageInfo): string {
  return `${toJsonPretty(imageInfoJson(info))}\n`;
}

export function formatInfoJsonList(list: ImageInfo[]): string {
  return `${toJsonPretty(list.map(imageInfoJson))}\n`;
}

/** dump_qobject/dump_qdict of the human "Format specific information" section. */
function dumpQObject(indent: number, v: JsonValue): string {
  if (v instanceof Map) return dumpQDict(indent, v);
  if (Array.isArray(v)) {
    let out = '';
    v.forEach((item, i) => {
      const composite = item instanceof Map || Array.isArray(item);
      out += `${' '.repeat(indent * 4)}[${i}]:${composite ? '\n' : ' '}`;
      out += dumpQObject(indent + 1, item);
    });
    return out;
  }
  if (typeof v === 'boolean') return `${v}\n`;
  return `${String(v)}\n`;
}

function dumpQDict(indent: number, d: JsonObject): string {
  let out = '';
  for (const [key, value] of qdictOrder([...d.entries()])) {
    const composite = value instanceof Map || Array.isArray(value);
    out += `${' '.repeat(indent * 4)}${key.replaceAll('-', ' ')}:${composite ? '\n' : ' '}`;
    out += dumpQObject(indent + 1, value);
  }
  return out;
}

export function formatInfoHuman(info: ImageInfo): string {
  let out =
    `image: ${info.filename}\n` +
    `file format: ${info.format}\n` +
    `virtual size: ${sizeToStr(info.virtualSize)} (${info.virtualSize} bytes)\n` +
    `disk size: ${info.actualSize === undefined ? 'unavailable' : sizeToStr(info.actualSize)}\n`;
  if (info.encrypted) out += 'encrypted: yes\n';
  if (info.clusterSize !== undefined) out += `cluster_size: ${info.clusterSize}\n`;
  if (info.dirtyFlag) out += 'cleanly shut down: no\n';
  if (info.backingFilename !== undefined) {
    out += `backing file: ${info.backingFilename}`;
    if (info.fullBackingFilename === undefined) out += ' (cannot determine actual path)';
    else if (info.backingFilename !== info.fullBackingFilename) out += ` (actual path: ${info.fullBackingFilename})`;
    out += '\n';
  }
  if (info.backingFilenameFormat !== undefined) out += `backing file format: ${info.backingFilenameFormat}\n`;
  if (info.snapshots && info.snapshots.length > 0) out += formatSnapshotList(info.snapshots);
  if (info.formatSpecific) {
    out += 'Format specific information:\n';
    out += dumpQObject(1, info.formatSpecific.data);
  }
  return out;
}

// ---------------------------------------------------------------- measure

export interface MeasureInfo {
  required: number;
  fullyAllocated: number;
  bitmaps?: number;
}

export function formatMeasure(mode: 'human' | 'json', m: MeasureInfo): string {
  if (mode === 'human') {
    let out = `required size: ${m.required}\nfully allocated size: ${m.fullyAllocated}\n`;
    if (m.bitmaps !== undefined) out += `bitmaps size: ${m.bitmaps}\n`;
    return out;
  }
  const j: JsonObject = new Map();
  j.set('required', BigInt(m.required));
  j.set('fully-allocated', BigInt(m.fullyAllocated));
  if (m.bitmaps !== undefined) j.set('bitmaps', BigInt(m.bitmaps));
  return `${toJsonPretty(j)}\n`;
}
