import type { Storage } from './types.ts';

/** The calls a wrapper may replace (the names it reports stay the inner storage's). */
export type StorageCalls = Omit<Storage, 'filename' | 'readOnly'>;

/**
 * A storage that forwards every call to `inner` except those `over` replaces: wrappers that
 * drop flushes (cache=unsafe), count writes (crash trials) or watch them (tests).
 */
export function delegateStorage(inner: Storage, over: Partial<StorageCalls>): Storage {
  return {
    get filename() {
      return inner.filename;
    },
    get readOnly() {
      return inner.readOnly;
    },
    size: over.size ?? (() => inner.size()),
    read: over.read ?? ((o, b) => inner.read(o, b)),
    write: over.write ?? ((o, d) => inner.write(o, d)),
    writeZeroes: over.writeZeroes ?? ((o, l, u, n) => inner.writeZeroes(o, l, u, n)),
    discard: over.discard ?? ((o, l) => inner.discard(o, l)),
    truncate: over.truncate ?? ((s, p) => inner.truncate(s, p)),
    flush: over.flush ?? (() => inner.flush()),
    close: over.close ?? (() => inner.close()),
  };
}
