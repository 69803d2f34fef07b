/** How new space is provided when a storage grows (QEMU's PreallocMode minus metadata). */
export type GrowMode = 'off' | 'falloc' | 'full';

/**
 * A flat, byte-addressed container: a host file, or whatever the block layer places where a
 * file would be (a blkdebug filter over a file, a null device). Format drivers such as qcow2
 * only ever talk to their image file, data file and backing through this interface, so error
 * injection and path policy live outside the format code.
 *
 * All calls are synchronous: qtest runs in-process and sync I/O keeps ordering obvious.
 * Failures are thrown as ErrnoError (src/errno.ts).
 */
export interface Storage {
  /** The name QEMU would show for this storage (the filename as given). */
  readonly filename: string;
  readonly readOnly: boolean;
  /** Current length in bytes. */
  size(): number;
  /** Read into buf at offset; bytes past the end read as zeroes. */
  read(offset: number, buf: Uint8Array): void;
  /** Write data at offset, growing the storage if needed. */
  write(offset: number, data: Uint8Array): void;
  /**
   * Make [offset, offset+length) read as zeroes. unmap allows deallocating (punching) it.
   * noFallback (QEMU's BDRV_REQ_NO_FALLBACK): only do it if it is cheap (no zero buffer is
   * written); throw ErrnoError(ENOTSUP) otherwise, so the caller can decide.
   */
  writeZeroes(offset: number, length: number, unmap: boolean, noFallback?: boolean): void;
  /** Hint that a range is no longer needed; contents afterwards read as zeroes for files. */
  discard(offset: number, length: number): void;
  /**
   * Set the length. Growing with 'falloc' reserves the new blocks (posix_fallocate), with
   * 'full' writes zeroes into them (file-posix's preallocation modes); 'off' (the default)
   * leaves a hole. Storages that cannot allocate treat every mode as 'off'.
   */
  truncate(size: number, prealloc?: GrowMode): void;
  flush(): void;
  close(): void;
}
