/**
 * Structure-aware mutations of a valid qcow2 image. A mutant is the seed's bytes with one to
 * three mutations applied; each mutation is described in words ("l1[0] = 0x7ffffffffffffe00")
 * and the mutant as a whole is also recorded as byte patches against the seed, so a finding
 * can be replayed and minimized without this module.
 */
import type { Field, FieldKind, Layout, Region } from './layout.ts';

export type Rng = () => number;

export interface Patch {
  offset: number;
  /** The new bytes, hex. */
  hex: string;
}

export interface MutantRecipe {
  /** What was done, one entry per mutation. */
  mutations: string[];
  /** The mutant as byte changes against the seed, then its length. */
  patches: Patch[];
  length: number;
}

const KIND_WEIGHTS: Record<FieldKind, number> = {
  header: 26,
  'ext-header': 8,
  'ext-data': 5,
  'backing-name': 3,
  l1: 8,
  l2: 12,
  'l2-compressed': 7,
  'l2-bitmap': 4,
  reftable: 8,
  refblock: 10,
  snapshot: 9,
  'snapshot-l1': 3,
  'bitmap-dir': 5,
  'bitmap-table': 3,
  'compressed-data': 4,
};

function pick<T>(r: Rng, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function readBig(b: Uint8Array, off: number, size: number): bigint {
  let v = 0n;
  for (let i = 0; i < size; i++) v = (v << 8n) | BigInt(b[off + i] ?? 0);
  return v;
}

function writeBig(b: Uint8Array, off: number, size: number, v: bigint): void {
  let x = BigInt.asUintN(size * 8, v);
  for (let i = size - 1; i >= 0; i--) {
    b[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** Values that break range checks, alignment checks and arithmetic. */
function interestingValues(layout: Layout, current: bigint, width: number): bigint[] {
  const cs = BigInt(layout.clusterSize);
  const fileSize = BigInt(layout.fileSize);
  const max = (1n << BigInt(width * 8)) - 1n;
  const vals = [
    0n,
    1n,
    2n,
    max,
    max >> 1n,
    (max >> 1n) + 1n,
    current + 1n,
    current - 1n,
    current + 512n,
    current + cs,
    current - cs,
    current * 2n,
    current / 2n,
    cs,
    cs - 1n,
    cs + 1n,
    fileSize,
    fileSize - cs,
    fileSize + cs,
    fileSize * 1024n,
    0x7fffffffn,
    0x80000000n,
    0xffffffffn,
    0x100000000n,
    1n << 53n,
    1n << 55n,
    (1n << 56n) - 512n,
    1n << 62n,
    1n << 63n,
    0x00fffffffffffe00n,
  ];
  return vals.map((v) => BigInt.asUintN(width * 8, v));
}

/** Bits worth flipping in 64-bit table entries: flags, reserved bits, high offset bits. */
const ENTRY_BITS = [63, 62, 61, 60, 56, 55, 54, 40, 33, 32, 31, 9, 8, 1, 0];

function mutateInteger(b: Uint8Array, f: Field, layout: Layout, others: Field[], r: Rng): string {
  const cur = readBig(b, f.offset, f.size);
  const k = r();
  let v: bigint;
  let how: string;
  if (k < 0.45) {
    v = pick(r, interestingValues(layout, cur, f.size));
    how = hex(v);
  } else if (k < 0.7) {
    const bits = f.size === 8 && f.kind !== 'header' ? ENTRY_BITS : [...Array(f.size * 8).keys()];
    const bit = pick(r, bits);
    v = cur ^ (1n << BigInt(bit));
    how = `${hex(v)} (bit ${bit} flipped)`;
  } else if (k < 0.85 && others.length > 0) {
    // Point at, or duplicate, another structure: overlaps and double references.
    const o = pick(r, others);
    if (f.size === 8 && (f.kind === 'l1' || f.kind === 'l2' || f.kind === 'reftable' || f.kind === 'snapshot-l1' || f.kind === 'bitmap-table')) {
      const flags = cur & 0xff000000000001ffn;
      v = flags | BigInt(o.offset - (o.offset % 512));
      how = `${hex(v)} (points at ${o.name})`;
    } else {
      v = readBig(b, o.offset, Math.min(o.size, f.size));
      how = `${hex(v)} (copied from ${o.name})`;
    }
  } else {
    v = BigInt(Math.floor(r() * 2 ** 32)) * (f.size > 4 ? BigInt(Math.floor(r() * 2 ** 24)) : 1n);
    how = `${hex(BigInt.asUintN(f.size * 8, v))} (random)`;
  }
  writeBig(b, f.offset, f.size, v);
  return `${f.name} = ${how}`;
}

function mutateBytes(b: Uint8Array, f: Field, r: Rng): string {
  const k = r();
  const at = f.offset + Math.floor(r() * f.size);
  if (k < 0.4) {
    const v = Math.floor(r() * 256);
    b[at] = v;
    return `${f.name} byte +${at - f.offset} = 0x${v.toString(16)}`;
  }
  if (k < 0.6) {
    b[at] = 0;
    return `${f.name} byte +${at - f.offset} = 0 (NUL)`;
  }
  if (k < 0.8) {
    b.fill(0xff, f.offset, f.offset + f.size);
    return `${f.name} filled with 0xff`;
  }
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) b[f.offset + Math.floor(r() * f.size)] = Math.floor(r() * 256);
  return `${f.name}: ${n} random bytes`;
}

function isStringField(f: Field): boolean {
  return (
    f.kind === 'backing-name' ||
    f.kind === 'compressed-data' ||
    (f.kind === 'ext-data' && f.name.endsWith('.data')) ||
    f.name.endsWith('.id') ||
    f.name.endsWith('.name')
  );
}

function mutateField(b: Uint8Array, layout: Layout, r: Rng): string {
  const present = new Map<FieldKind, Field[]>();
  for (const f of layout.fields) {
    const list = present.get(f.kind) ?? [];
    list.push(f);
    present.set(f.kind, list);
  }
  const kinds = [...present.keys()];
  const total = kinds.reduce((s, k) => s + KIND_WEIGHTS[k], 0);
  let x = r() * total;
  let kind = kinds[0]!;
  for (const k of kinds) {
    x -= KIND_WEIGHTS[k];
    if (x < 0) {
      kind = k;
      break;
    }
  }
  const list = present.get(kind)!;
  const f = pick(r, list);
  if (isStringField(f) || ![1, 2, 4, 8].includes(f.size)) return mutateBytes(b, f, r);
  const targets = layout.regions.map((g): Field => ({ name: g.name, kind: 'header', offset: g.offset, size: 8 })).concat(list.filter((o) => o !== f));
  return mutateInteger(b, f, layout, targets, r);
}

function mutateRegion(b: Uint8Array, layout: Layout, r: Rng): string {
  const g: Region = pick(r, layout.regions);
  const end = Math.min(b.length, g.offset + g.size);
  const k = r();
  if (k < 0.3) {
    b.fill(0, g.offset, end);
    return `${g.name} zeroed`;
  }
  if (k < 0.45) {
    b.fill(0xff, g.offset, end);
    return `${g.name} filled with 0xff`;
  }
  if (k < 0.75) {
    const other = pick(r, layout.regions);
    const n = Math.min(end - g.offset, other.size, b.length - other.offset);
    b.copyWithin(g.offset, other.offset, other.offset + n);
    return `${g.name} overwritten with ${other.name} (${n} bytes)`;
  }
  const n = 1 + Math.floor(r() * 16);
  for (let i = 0; i < n; i++) b[g.offset + Math.floor(r() * (end - g.offset))] = Math.floor(r() * 256);
  return `${g.name}: ${n} random bytes`;
}

/** New length for a truncation: inside a structure, at a cluster boundary, or grown. */
function newLength(layout: Layout, r: Rng): { length: number; how: string } {
  const size = layout.fileSize;
  const cs = layout.clusterSize;
  const k = r();
  if (k < 0.15) return { length: Math.floor(r() * Math.min(size, 512)), how: 'inside the header' };
  if (k < 0.5) {
    const g = pick(r, layout.regions);
    const at = g.offset + Math.floor(r() * g.size);
    return { length: Math.min(size - 1, at), how: `inside ${g.name}` };
  }
  if (k < 0.7) return { length: Math.floor((r() * size) / cs) * cs, how: 'at a cluster boundary' };
  if (k < 0.8) return { length: size - 1 - Math.floor(r() * 511), how: 'just before the end' };
  if (k < 0.9) return { length: size + cs * (1 + Math.floor(r() * 4)), how: 'grown (zeroes)' };
  return { length: Math.floor(r() * size), how: 'at a random offset' };
}

/** The changed byte ranges of `after` against `before` (up to the shorter length). */
export function diffPatches(before: Uint8Array, after: Uint8Array): Patch[] {
  const patches: Patch[] = [];
  const n = Math.min(before.length, after.length);
  let i = 0;
  while (i < n) {
    if (before[i] === after[i]) {
      i++;
      continue;
    }
    let j = i;
    // Runs separated by fewer than 8 equal bytes are kept together.
    let same = 0;
    while (j < n && same < 8) {
      same = before[j] === after[j] ? same + 1 : 0;
      j++;
    }
    const end = j - same;
    patches.push({ offset: i, hex: Buffer.from(after.subarray(i, end)).toString('hex') });
    i = j;
  }
  return patches;
}

/** Rebuild a mutant from its seed and recipe. */
export function applyPatches(seed: Uint8Array, patches: readonly Patch[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  out.set(seed.subarray(0, Math.min(length, seed.length)));
  for (const p of patches) {
    const bytes = Buffer.from(p.hex, 'hex');
    if (p.offset < length) out.set(bytes.subarray(0, length - p.offset), p.offset);
  }
  return out;
}

/** One mutant of `seed`: 1-3 mutations, drawn from r. */
export function mutate(seed: Uint8Array, layout: Layout, r: Rng): { bytes: Uint8Array; recipe: MutantRecipe } {
  const work = new Uint8Array(seed);
  const count = pick(r, [1, 1, 1, 2, 2, 3]);
  const mutations: string[] = [];
  let length = seed.length;
  for (let i = 0; i < count; i++) {
    const k = r();
    if (k < 0.72) mutations.push(mutateField(work, layout, r));
    else if (k < 0.84) mutations.push(mutateRegion(work, layout, r));
    else if (k < 0.92) {
      const t = newLength(layout, r);
      length = t.length;
      mutations.push(`file truncated to ${t.length} (${t.how})`);
    } else {
      const n = 1 + Math.floor(r() * 4);
      const hdr = Math.min(work.length, layout.clusterSize);
      for (let j = 0; j < n; j++) work[Math.floor(r() * hdr)] ^= 1 << Math.floor(r() * 8);
      mutations.push(`${n} random bit flips in the first cluster`);
    }
  }
  const bytes = applyPatches(work, [], length);
  return { bytes, recipe: { mutations, patches: diffPatches(seed, bytes), length } };
}
