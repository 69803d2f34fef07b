/**
 * Iteration order of a GLib GHashTable with string keys (g_str_hash), as QEMU's QAPI input
 * visitor uses one to find the first "unexpected" parameter: open addressing over
 * 1 << shift slots, start slot (hash * 11) % prime_mod[shift], quadratic probing, removed
 * keys leaving tombstones, iteration in slot order.
 */

const PRIME_MOD = [1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521];
const MIN_SHIFT = 3;
const UNUSED = 0;
const TOMBSTONE = 1;

/** g_str_hash (djb2 over signed chars, 32-bit). */
export function gStrHash(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let h = 5381;
  for (const b of bytes) {
    const c = b >= 128 ? b - 256 : b;
    h = (Math.imul(h, 33) + c) >>> 0;
  }
  return h;
}

export class GStrSet {
  private shift = MIN_SHIFT;
  private hashes: number[] = [];
  private keys: (string | undefined)[] = [];
  private nnodes = 0;
  private noccupied = 0;

  constructor() {
    this.reset(MIN_SHIFT);
  }

  private get size(): number {
    return 1 << this.shift;
  }

  private reset(shift: number): void {
    this.shift = shift;
    this.hashes = new Array<number>(1 << shift).fill(UNUSED);
    this.keys = new Array<string | undefined>(1 << shift).fill(undefined);
  }

  private lookup(key: string): { index: number; hash: number; found: boolean } {
    let hash = gStrHash(key);
    if (hash < 2) hash = 2;
    const mask = this.size - 1;
    let index = (Math.imul(hash, 11) >>> 0) % PRIME_MOD[this.shift]!;
    let step = 0;
    let firstTombstone = -1;
    while (this.hashes[index] !== UNUSED) {
      if (this.hashes[index] === hash && this.keys[index] === key) return { index, hash, found: true };
      if (this.hashes[index] === TOMBSTONE && firstTombstone < 0) firstTombstone = index;
      step++;
      index = (index + step) & mask;
    }
    return { index: firstTombstone >= 0 ? firstTombstone : index, hash, found: false };
  }

  add(key: string): void {
    const { index, hash, found } = this.lookup(key);
    if (found) return;
    const wasUnused = this.hashes[index] === UNUSED;
    this.hashes[index] = hash;
    this.keys[index] = key;
    this.nnodes++;
    if (wasUnused) {
      this.noccupied++;
      this.maybeResize();
    }
  }

  delete(key: string): void {
    const { index, found } = this.lookup(key);
    if (!found) return;
    this.hashes[index] = TOMBSTONE;
    this.keys[index] = undefined;
    this.nnodes--;
    this.maybeResize();
  }

  private maybeResize(): void {
    const size = this.size;
    if ((size > this.nnodes * 4 && size > 1 << MIN_SHIFT) || size <= this.noccupied + Math.floor(this.noccupied / 16)) {
      this.resize();
    }
  }

  /** g_hash_table_resize: in-place relocation by eviction, as GLib does it. */
  private resize(): void {
    const oldSize = this.size;
    let n = Math.trunc(this.nnodes * 1.333);
    let shift = 0;
    while (n) {
      n >>= 1;
      shift++;
    }
    this.shift = Math.max(shift, MIN_SHIFT);
    const size = this.size;
    const mask = size - 1;
    if (size > oldSize) {
      for (let i = oldSize; i < size; i++) {
        this.hashes[i] = UNUSED;
        this.keys[i] = undefined;
      }
    }
    const relocated = new Array<boolean>(Math.max(size, oldSize)).fill(false);
    for (let i = 0; i < oldSize; i++) {
      let nodeHash = this.hashes[i]!;
      if (nodeHash < 2) {
        this.hashes[i] = UNUSED;
        continue;
      }
      if (relocated[i]) continue;
      this.hashes[i] = UNUSED;
      let key = this.keys[i];
      this.keys[i] = undefined;
      for (;;) {
        let idx = (Math.imul(nodeHash, 11) >>> 0) % PRIME_MOD[this.shift]!;
        let step = 0;
        while (relocated[idx]) {
          step++;
          idx = (idx + step) & mask;
        }
        relocated[idx] = true;
        const replacedHash = this.hashes[idx]!;
        const replacedKey = this.keys[idx];
        this.hashes[idx] = nodeHash;
        this.keys[idx] = key;
        if (replacedHash < 2) break;
        nodeHash = replacedHash;
        key = replacedKey;
      }
    }
    if (size < oldSize) {
      this.hashes.length = size;
      this.keys.length = size;
    }
    this.noccupied = this.nnodes;
  }

  /** Keys in iteration order. */
  entries(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.size; i++) if (this.hashes[i]! >= 2) out.push(this.keys[i]!);
    return out;
  }
}
