import { createRequire } from 'node:module';
import { Errno, ErrnoError } from '../errno.ts';

/**
 * fallocate(2) and SEEK_DATA/SEEK_HOLE through the native/hostfs.c addon. QEMU's file
 * driver uses them for zero writes, discards, falloc preallocation and block status; without
 * them qtest can only write zeroes and guess holes, which shows in `qemu-img map`, disk sizes
 * and allocating-write speed. `hostFs` is null when the addon was not built (see
 * native/build-failed.js); callers then take their portable paths.
 */
export interface HostFs {
  /** fallocate(fd, mode, offset, length); throws ErrnoError (ENOTSUP for ENOSYS/EOPNOTSUPP/ENODEV). */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /** The next data (or hole) offset at or after offset; null when there is none (ENXIO). */
  seek(fd: number, offset: number, what: 'data' | 'hole'): number | null;
  /** The address of the view's first byte modulo 4096. */
  pageOffset(view: Uint8Array): number;
}

/** Linux fallocate(2) mode bits. */
export const FALLOC = {
  KEEP_SIZE: 0x01,
  PUNCH_HOLE: 0x02,
  ZERO_RANGE: 0x10,
} as const;

interface Addon {
  fallocate(fd: number, mode: number, offset: number, length: number): number;
  lseek(fd: number, offset: number, whence: number): number;
  pageOffset(view: Uint8Array): number;
  constants: { SEEK_DATA: number; SEEK_HOLE: number };
}

const ENXIO = 6;
const EOPNOTSUPP_LIKE = new Set([19 /* ENODEV */, Errno.ENOSYS, Errno.ENOTSUP, 25 /* ENOTTY */]);

function load(): HostFs | null {
  if (process.env.QTEST_NO_HOSTFS === '1') return null;
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)('../../build/Release/hostfs.node') as Addon;
  } catch {
    return null;
  }
  return {
    fallocate(fd, mode, offset, length) {
      const r = addon.fallocate(fd, mode, offset, length);
      // QEMU folds "this file system cannot" into ENOTSUP before deciding on a fallback.
      if (r < 0) throw new ErrnoError(EOPNOTSUPP_LIKE.has(-r) ? Errno.ENOTSUP : -r);
    },
    seek(fd, offset, what) {
      const r = addon.lseek(fd, offset, what === 'data' ? addon.constants.SEEK_DATA : addon.constants.SEEK_HOLE);
      if (r === -ENXIO) return null;
      if (r < 0) throw new ErrnoError(-r);
      return r;
    },
    pageOffset(view) {
      const r = addon.pageOffset(view);
      if (r < 0) throw new ErrnoError(-r);
      return r;
    },
  };
}

export const hostFs: HostFs | null = load();
