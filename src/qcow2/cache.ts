/**
 * Metadata table cache (QEMU's Qcow2Cache): L2 tables and refcount blocks are kept in memory,
 * modified there and written back lazily. Ordering between the two caches is expressed as
 * QEMU does it:
 *  - `dependency`: before any entry of this cache is written, the dependency cache is
 *    flushed (written + storage flush). Allocations make the L2 cache depend on the refcount
 *    cache (a new cluster's refcount is on disk before an L2 entry points to it); frees make
 *    the refcount cache depend on the L2 cache (no L2 entry still points at a cluster whose
 *    refcount dropped to zero on disk).
 *  - `dependsOnFlush`: the storage must be flushed before this cache writes (COW data is
 *    stable before the L2 entry that exposes it).
 */
import type { Storage } from '../storage/types.ts';
import { flushStorage, readAt, writeAt } from './io.ts';

/**
 * Callers hold at most a few entries at a time; a floor on the capacity guarantees that the
 * least recently used victim is never one of them.
 */
const MIN_CAPACITY = 16;

export interface CacheEntry {
  offset: number;
  data: Uint8Array;
  dirty: boolean;
}

export class TableCache {
  private readonly file: Storage;
  private readonly tableSize: number;
  private capacity: number;
  private readonly entries = new Map<number, CacheEntry>();
  /** The most recently used entry: hits on it skip the LRU reordering (tight per-cluster loops). */
  private mru: CacheEntry | null = null;
  dependency: TableCache | null = null;
  dependsOnFlush = false;
  /** Called before a table is written, with its offset and size (overlap check hook). */
  beforeWrite: ((offset: number, size: number) => void) | null = null;

  constructor(file: Storage, tableSize: number, capacity: number) {
    this.file = file;
    this.tableSize = tableSize;
    this.capacity = Math.max(MIN_CAPACITY, capacity);
  }

  setCapacity(capacity: number): void {
    this.capacity = Math.max(MIN_CAPACITY, capacity);
  }

  /** The table at offset, loaded from the file if not cached. */
  get(offset: number): CacheEntry {
    const mru = this.mru;
    if (mru !== null && mru.offset === offset) return mru;
    const hit = this.entries.get(offset);
    if (hit) {
      // Keep Map insertion order as LRU order.
      this.entries.delete(offset);
      this.entries.set(offset, hit);
      this.mru = hit;
      return hit;
    }
    this.makeRoom();
    const data = new Uint8Array(this.tableSize);
    readAt(this.file, offset, data);
    const e: CacheEntry = { offset, data, dirty: false };
    this.entries.set(offset, e);
    this.mru = e;
    return e;
  }

  /** A cache slot for offset whose old contents do not matter (caller fills it). */
  getEmpty(offset: number): CacheEntry {
    const hit = this.entries.get(offset);
    if (hit) {
      this.entries.delete(offset);
      this.entries.set(offset, hit);
      this.mru = hit;
      return hit;
    }
    this.makeRoom();
    const e: CacheEntry = { offset, data: new Uint8Array(this.tableSize), dirty: false };
    this.entries.set(offset, e);
    this.mru = e;
    return e;
  }

  peek(offset: number): CacheEntry | undefined {
    return this.entries.get(offset);
  }

  markDirty(e: CacheEntry): void {
    e.dirty = true;
  }

  /** Forget a table without writing it (its cluster was freed). */
  discard(offset: number): void {
    if (this.mru?.offset === offset) this.mru = null;
    this.entries.delete(offset);
  }

  setDependency(dep: TableCache): void {
    if (dep.dependency) dep.flushDependency();
    if (this.dependency && this.dependency !== dep) this.flushDependency();
    this.dependency = dep;
  }

  private flushDependency(): void {
    const dep = this.dependency;
    this.dependency = null;
    this.dependsOnFlush = false;
    if (dep) dep.flush();
  }

  private writeEntry(e: CacheEntry): void {
    if (!e.dirty) return;
    if (this.dependency) this.flushDependency();
    else if (this.dependsOnFlush) {
      flushStorage(this.file);
      this.dependsOnFlush = false;
    }
    this.beforeWrite?.(e.offset, this.tableSize);
    writeAt(this.file, e.offset, e.data);
    e.dirty = false;
  }

  /** qcow2_cache_write(): write every dirty table; the first error is rethrown. */
  write(): void {
    let first: unknown = null;
    for (const e of [...this.entries.values()].sort((a, b) => a.offset - b.offset)) {
      try {
        this.writeEntry(e);
      } catch (err) {
        first ??= err;
      }
    }
    if (first) throw first;
  }

  /** qcow2_cache_flush(): write, then flush the storage. */
  flush(): void {
    this.write();
    flushStorage(this.file);
  }

  /** Write everything and drop all entries. */
  empty(): void {
    this.flush();
    this.entries.clear();
    this.mru = null;
  }

  /** Drop everything without writing (after a fatal error). */
  clear(): void {
    this.entries.clear();
    this.mru = null;
    this.dependency = null;
    this.dependsOnFlush = false;
  }

  hasDirty(): boolean {
    for (const e of this.entries.values()) if (e.dirty) return true;
    return false;
  }

  private makeRoom(): void {
    while (this.entries.size >= this.capacity) {
      const victim = this.entries.values().next().value as CacheEntry;
      this.writeEntry(victim);
      this.entries.delete(victim.offset);
      if (victim === this.mru) this.mru = null;
    }
  }
}
