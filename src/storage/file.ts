import * as fs from 'node:fs';
import { ErrnoError, Errno, fromNodeError } from '../errno.ts';
import { FALLOC, hostFs } from './hostfs.ts';
import type { GrowMode, Storage } from './types.ts';

const ZERO_CHUNK = 1 << 20;
/** file-posix writes 'full' preallocation in 64 KiB pieces. */
const FULL_PREALLOC_CHUNK = 65536;
let zeroes: Uint8Array | undefined;
function zeroBuffer(): Uint8Array {
  zeroes ??= new Uint8Array(ZERO_CHUNK);
  return zeroes;
}

/**
 * Whether flush() reaches the disk (fdatasync). Scenario runs on the builtin backend work in a
 * scratch TEST_DIR that nobody needs after a power cut, like iotests run with CACHEMODE=unsafe;
 * they turn it off because syncs dominated their run time. Flush errors injected above the
 * file (blkdebug) still happen: only the final host call is skipped.
 */
let syncToDisk = true;
export function setSyncToDisk(enabled: boolean): void {
  syncToDisk = enabled;
}

function rethrow(err: unknown): never {
  throw fromNodeError(err);
}

export interface FileOpenOptions {
  readOnly?: boolean;
  /** Create the file (empty) if it does not exist. */
  create?: boolean;
  /** Truncate to zero length on open. */
  truncate?: boolean;
}

/** A host file accessed with positioned, synchronous reads and writes. */
export class FileStorage implements Storage {
  readonly filename: string;
  readonly readOnly: boolean;
  private fd: number;
  private length: number;

  private constructor(filename: string, fd: number, readOnly: boolean) {
    this.filename = filename;
    this.fd = fd;
    this.readOnly = readOnly;
    this.length = fs.fstatSync(fd).size;
  }

  /** Open path (relative paths resolve against the process cwd); filename is kept as given. */
  static open(filename: string, opts: FileOpenOptions = {}, path: string = filename): FileStorage {
    const readOnly = opts.readOnly ?? false;
    let flags = readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
    if (opts.create) flags |= fs.constants.O_CREAT;
    if (opts.truncate) flags |= fs.constants.O_TRUNC;
    let fd: number;
    try {
      fd = fs.openSync(path, flags, 0o644);
    } catch (err) {
      rethrow(err);
    }
    try {
      if (fs.fstatSync(fd).isDirectory()) throw new ErrnoError(Errno.EISDIR);
    } catch (err) {
      fs.closeSync(fd);
      rethrow(err);
    }
    return new FileStorage(filename, fd, readOnly);
  }

  size(): number {
    return this.length;
  }

  read(offset: number, buf: Uint8Array): void {
    let done = 0;
    try {
      while (done < buf.length) {
        const n = fs.readSync(this.fd, buf, done, buf.length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
    } catch (err) {
      rethrow(err);
    }
    if (done < buf.length) buf.fill(0, done);
  }

  write(offset: number, data: Uint8Array): void {
    this.assertWritable();
    let done = 0;
    try {
      while (done < data.length) {
        done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
      }
    } catch (err) {
      rethrow(err);
    }
    if (offset + data.length > this.length) this.length = offset + data.length;
  }

  /**
   * The order of attempts is file-posix's: punch (when unmapping), ZERO_RANGE, punch +
   * allocate, allocate past EOF; only then a written zero buffer, unless noFallback.
   */
  writeZeroes(offset: number, length: number, unmap: boolean, noFallback = false): void {
    this.assertWritable();
    if (length <= 0) return;
    const end = offset + length;
    if (hostFs && this.zeroWithoutWriting(offset, length, unmap)) {
      if (end > this.length) this.length = end;
      return;
    }
    if (noFallback) throw new ErrnoError(Errno.ENOTSUP);
    // Past EOF nothing needs writing: growing the file leaves a hole that reads as zeroes.
    const writeEnd = Math.min(end, this.length);
    const zero = zeroBuffer();
    for (let pos = offset; pos < writeEnd; pos += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, writeEnd - pos);
      this.write(pos, n === ZERO_CHUNK ? zero : zero.subarray(0, n));
    }
    if (end > this.length) this.truncate(end);
  }

  private zeroWithoutWriting(offset: number, length: number, unmap: boolean): boolean {
    const fs_ = hostFs;
    if (!fs_) return false;
    const attempt = (mode: number, off = offset, len = length): 'ok' | 'unsupported' | 'einval' => {
      try {
        fs_.fallocate(this.fd, mode, off, len);
        return 'ok';
      } catch (err) {
        if (err instanceof ErrnoError && err.errno === Errno.ENOTSUP) return 'unsupported';
        if (err instanceof ErrnoError && err.errno === Errno.EINVAL) return 'einval';
        throw err;
      }
    };
    const end = offset + length;
    if (unmap && attempt(FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE) === 'ok') {
      // A punch never grows the file; the range must still exist afterwards.
      if (end > this.length) this.truncate(end);
      return true;
    }
    if (attempt(FALLOC.ZERO_RANGE) === 'ok') return true;
    if (attempt(FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE) === 'ok') {
      if (attempt(0) === 'ok') return true;
    }
    if (offset >= this.length && attempt(0) === 'ok') return true;
    return false;
  }

  discard(offset: number, length: number): void {
    this.assertWritable();
    const len = Math.max(0, Math.min(length, this.length - offset));
    if (len === 0) return;
    if (hostFs) {
      try {
        hostFs.fallocate(this.fd, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, offset, len);
        return;
      } catch (err) {
        // Discard is advisory: QEMU ignores ENOTSUP from it.
        if (!(err instanceof ErrnoError && err.errno === Errno.ENOTSUP)) throw err;
      }
    }
    // Without punching, zeroing gives the same read-back contents.
    this.writeZeroes(offset, len, true);
  }

  /**
   * posix_fallocate() of [offset, offset+length): reserve blocks, growing the file. Without
   * fallocate the blocks are written with zeroes, as glibc's emulation does.
   */
  preallocate(offset: number, length: number): void {
    this.assertWritable();
    if (length <= 0) return;
    const end = offset + length;
    if (hostFs) {
      try {
        hostFs.fallocate(this.fd, 0, offset, length);
        if (end > this.length) this.length = end;
        return;
      } catch (err) {
        if (!(err instanceof ErrnoError && err.errno === Errno.ENOTSUP)) throw err;
      }
    }
    const zero = zeroBuffer();
    for (let pos = offset; pos < end; pos += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, end - pos);
      this.write(pos, n === ZERO_CHUNK ? zero : zero.subarray(0, n));
    }
  }

  /**
   * Whether offset lies in data or in a hole, and where that run ends (SEEK_DATA/SEEK_HOLE,
   * as file-posix's find_allocation). null when the host cannot tell (no native helper).
   */
  allocationAt(offset: number): { data: boolean; end: number } | null {
    if (!hostFs) return null;
    if (offset >= this.length) return { data: false, end: offset };
    const data = hostFs.seek(this.fd, offset, 'data');
    if (data === null) return { data: false, end: this.length };
    if (data > offset) return { data: false, end: Math.min(data, this.length) };
    const hole = hostFs.seek(this.fd, offset, 'hole');
    return { data: true, end: Math.min(hole ?? this.length, this.length) };
  }

  /**
   * handle_aiocb_truncate: 'falloc' grows with posix_fallocate alone (no ftruncate first),
   * 'full' sets the size and then writes the new area with zeroes and syncs it.
   */
  truncate(size: number, prealloc: GrowMode = 'off'): void {
    this.assertWritable();
    const old = this.length;
    if (prealloc === 'falloc' && size > old) {
      this.preallocate(old, size - old);
      return;
    }
    try {
      fs.ftruncateSync(this.fd, size);
    } catch (err) {
      rethrow(err);
    }
    this.length = size;
    if (prealloc === 'full' && size > old) {
      const zero = zeroBuffer();
      for (let pos = old; pos < size; pos += FULL_PREALLOC_CHUNK) {
        this.write(pos, zero.subarray(0, Math.min(FULL_PREALLOC_CHUNK, size - pos)));
      }
      this.flush();
    }
  }

  flush(): void {
    if (this.readOnly || !syncToDisk) return;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (err) {
      rethrow(err);
    }
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  /** Bytes the file occupies on disk (st_blocks * 512), for `qemu-img info`'s disk size. */
  allocatedBytes(): number {
    return fs.fstatSync(this.fd).blocks * 512;
  }

  private assertWritable(): void {
    if (this.readOnly) throw new ErrnoError(Errno.EBADF);
  }
}
