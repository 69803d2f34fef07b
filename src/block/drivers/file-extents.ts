/**
 * Which 4 KiB blocks of a host file hold data, as the file driver's block status reports them
 * (see FileNode.doBlockStatus: a block is data when it is the file's first block or holds a
 * nonzero byte; Node has no SEEK_DATA to ask the file system).
 *
 * Finding that out means reading the file, and reading the holes of a large sparse file is
 * what the kernel spends its time on. So what is learnt is kept per host file (device and
 * inode) for the whole process, together with the file's stat signature (size, blocks, mtime,
 * ctime): writes through the block layer keep the knowledge exact and refresh the signature;
 * anything else that touches the file (another process, a scenario's poke) changes the
 * signature, and the file is read again. The answers are the same either way; the cache only
 * saves reading.
 */
import * as fs from 'node:fs';
import { isZeroRange } from '../zero.ts';

export const EXTENT_BLOCK = 4096;

const UNKNOWN = -1;
const HOLE = 0;
const DATA = 1;

/** A run of blocks [start, end) in one state: DATA, HOLE or UNKNOWN. */
interface Run {
  start: number;
  end: number;
  state: number;
}

/** Sorted, disjoint runs of known blocks; gaps are unknown. */
export class ExtentMap {
  private runs: Run[] = [];

  /** The run containing block b (an unknown gap reaches to the next known run). */
  at(b: number): Run {
    const i = this.indexAfter(b);
    const prev = this.runs[i - 1];
    if (prev && prev.end > b) return prev;
    const next = this.runs[i];
    return { start: prev ? prev.end : 0, end: next ? next.start : Infinity, state: UNKNOWN };
  }

  /** Set blocks [start, end) to a state (UNKNOWN forgets them). */
  set(start: number, end: number, state: number): void {
    if (end <= start) return;
    const out: Run[] = [];
    for (const r of this.runs) {
      if (r.end <= start || r.start >= end) {
        out.push(r);
        continue;
      }
      if (r.start < start) out.push({ start: r.start, end: start, state: r.state });
      if (r.end > end) out.push({ start: end, end: r.end, state: r.state });
    }
    if (state !== UNKNOWN) out.push({ start, end, state });
    out.sort((a, b) => a.start - b.start);
    // Merge neighbours in the same state.
    const merged: Run[] = [];
    for (const r of out) {
      const last = merged[merged.length - 1];
      if (last && last.end === r.start && last.state === r.state) last.end = r.end;
      else merged.push({ ...r });
    }
    this.runs = merged;
  }

  /** The file now has `blocks` blocks: forget everything past them. */
  truncate(blocks: number): void {
    this.set(blocks, Infinity, UNKNOWN);
  }

  /** Index of the first run starting after block b. */
  private indexAfter(b: number): number {
    let lo = 0;
    let hi = this.runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.runs[mid]!.start <= b) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

interface Entry {
  signature: string;
  map: ExtentMap;
}

const registry = new Map<string, Entry>();

function statOf(path: string): fs.BigIntStats | undefined {
  try {
    return fs.statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

function keyOf(st: fs.BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

function signatureOf(st: fs.BigIntStats): string {
  return `${st.size}:${st.blocks}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** The knowledge about one host file, valid while the file's signature is unchanged. */
export class FileExtents {
  readonly path: string;
  private entry: Entry | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** The map for the file as it is now (a fresh one when the file changed behind our back). */
  current(): ExtentMap {
    const st = statOf(this.path);
    if (!st) return new ExtentMap();
    const key = keyOf(st);
    const sig = signatureOf(st);
    let e = registry.get(key);
    if (!e || e.signature !== sig) {
      e = { signature: sig, map: new ExtentMap() };
      registry.set(key, e);
    }
    this.entry = e;
    return e.map;
  }

  /** Call before changing the file: the knowledge must describe the file as it was. */
  beforeChange(): void {
    if (!this.entry) this.current();
  }

  /**
   * Record a change made through the block layer (after beforeChange() and the write) and
   * take the file's new signature, so the knowledge stays valid.
   */
  update(change: (map: ExtentMap) => void): void {
    const st = statOf(this.path);
    if (!st) return;
    const e = this.entry ?? { signature: '', map: new ExtentMap() };
    this.entry = e;
    registry.set(keyOf(st), e);
    change(e.map);
    e.signature = signatureOf(st);
  }
}

/** A write of `data` at `offset`: whole blocks become DATA or HOLE, partial ones unknown. */
export function recordWrite(map: ExtentMap, offset: number, data: Uint8Array): void {
  const first = Math.ceil(offset / EXTENT_BLOCK);
  const last = Math.floor((offset + data.length) / EXTENT_BLOCK);
  map.set(Math.floor(offset / EXTENT_BLOCK), first, UNKNOWN);
  map.set(Math.max(last, first), Math.ceil((offset + data.length) / EXTENT_BLOCK), UNKNOWN);
  for (let b = first; b < last; ) {
    // Runs of equal state are set at once; most writes are all data or all zeroes.
    const from = (b * EXTENT_BLOCK) - offset;
    const isData = b === 0 || !isZeroRange(data, from, from + EXTENT_BLOCK);
    let e = b + 1;
    while (e < last) {
      const f = e * EXTENT_BLOCK - offset;
      if (!isZeroRange(data, f, f + EXTENT_BLOCK) !== isData) break;
      e++;
    }
    map.set(b, e, isData ? DATA : HOLE);
    b = e;
  }
}

/** Zeroes over [offset, offset + length) (write-zeroes, discard, growth). */
export function recordZeroes(map: ExtentMap, offset: number, length: number): void {
  const first = Math.ceil(offset / EXTENT_BLOCK);
  const last = Math.floor((offset + length) / EXTENT_BLOCK);
  map.set(Math.floor(offset / EXTENT_BLOCK), first, UNKNOWN);
  map.set(Math.max(last, first), Math.ceil((offset + length) / EXTENT_BLOCK), UNKNOWN);
  map.set(first, last, HOLE);
  // The first block counts as data whatever it holds.
  if (first === 0 && last > 0) map.set(0, 1, DATA);
}

/** A truncate from oldSize to newSize. */
export function recordTruncate(map: ExtentMap, oldSize: number, newSize: number): void {
  const keep = Math.floor(Math.min(oldSize, newSize) / EXTENT_BLOCK);
  // The block holding the old or new end changed in part.
  map.truncate(keep);
  if (newSize > oldSize) recordZeroes(map, Math.ceil(oldSize / EXTENT_BLOCK) * EXTENT_BLOCK, newSize - Math.ceil(oldSize / EXTENT_BLOCK) * EXTENT_BLOCK);
}

/**
 * The state of the run of blocks starting at `block`, scanning the file where nothing is
 * known, up to block `limit`. Returns whether it is data and the block where the run ends.
 */
export function runAt(map: ExtentMap, block: number, limit: number, read: (offset: number, buf: Uint8Array) => void, size: number): { isData: boolean; end: number } {
  let first = map.at(block);
  if (first.state === UNKNOWN) {
    scan(map, block, Math.min(limit, first.end), read, size);
    first = map.at(block);
  }
  const isData = first.state === DATA;
  let end = first.end;
  while (end < limit) {
    let next = map.at(end);
    if (next.state === UNKNOWN) {
      scan(map, end, Math.min(limit, next.end), read, size);
      next = map.at(end);
    }
    if (next.state !== first.state) break;
    end = next.end;
  }
  return { isData, end: Math.min(end, limit) };
}

const SCAN_BLOCKS = 256;
let scanBuffer: Uint8Array | undefined;

/** Read blocks [from, to) and record what they hold, a chunk at a time, stopping at a change. */
function scan(map: ExtentMap, from: number, to: number, read: (offset: number, buf: Uint8Array) => void, size: number): void {
  scanBuffer ??= new Uint8Array(SCAN_BLOCKS * EXTENT_BLOCK);
  const total = Math.ceil(size / EXTENT_BLOCK);
  const end = Math.min(to, total);
  let firstState: number | undefined;
  for (let b = from; b < end; ) {
    const count = Math.min(SCAN_BLOCKS, end - b);
    const bytes = Math.min(count * EXTENT_BLOCK, size - b * EXTENT_BLOCK);
    const view = scanBuffer.subarray(0, bytes);
    read(b * EXTENT_BLOCK, view);
    let changed = false;
    if (isZeroRange(view) && b > 0) {
      map.set(b, b + count, HOLE);
      changed = firstState !== undefined && firstState !== HOLE;
      firstState ??= HOLE;
    } else {
      for (let i = 0; i < count; ) {
        const at = b + i;
        const from0 = i * EXTENT_BLOCK;
        const state = at === 0 || !isZeroRange(view, from0, Math.min(from0 + EXTENT_BLOCK, bytes)) ? DATA : HOLE;
        let j = i + 1;
        while (j < count) {
          const f = j * EXTENT_BLOCK;
          const s2 = !isZeroRange(view, f, Math.min(f + EXTENT_BLOCK, bytes)) ? DATA : HOLE;
          if (s2 !== state) break;
          j++;
        }
        map.set(at, b + j, state);
        if (firstState !== undefined && state !== firstState) changed = true;
        firstState ??= state;
        i = j;
      }
    }
    b += count;
    if (changed) break;
  }
}

/** A file just created with `size` bytes of zeroes (file-posix create): nothing to read. */
export function noteZeroFilledFile(path: string, size: number): void {
  new FileExtents(path).update((m) => recordTruncate(m, 0, size));
}
