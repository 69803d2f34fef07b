/**
 * qtest's qcow2 engine: a TypeScript implementation of the qcow2 format with QEMU 7.2's
 * on-disk layout and allocation order. It knows nothing about tools or text output; errors
 * carry QEMU's wording (Qcow2Error: errno + message) and corruption is reported through
 * Qcow2CorruptionError (EIO) plus an optional onCorruption callback.
 *
 * Storage only: the engine reads and writes the image file, the external data file and
 * the backing node exclusively through objects handed in by the caller (Storage,
 * GuestReader). It never opens a path: a data file named in the header is opened by the
 * caller's `openDataFile` callback, the backing chain by the caller (using
 * `header.backingFile` / `header.backingFormat`) and attached with `backing` / setBacking().
 *
 * Public API
 *   createQcow2(file, opts: Qcow2CreateOptions, dataFile?): void
 *   validateCreateOptions(opts) -> { version, clusterSize, prealloc }   (no I/O)
 *   openQcow2(opts: Qcow2OpenOptions): Qcow2Image
 *   class Qcow2Image
 *     header: Qcow2HeaderInfo, virtualSize, clusterSize, readOnly, dataStorage,
 *     hasExternalDataFile, snapshots, backing
 *     read(offset, buf)                    guest read (backing fall-through / zeroes)
 *     write(offset, data)                  guest write (RMW/COW for partial clusters)
 *     writeZeroes(offset, length, {unmap}) zero flags where aligned, explicit zeroes else
 *     discard(offset, length)              whole clusters only (the block layer's split)
 *     writeCompressed(offset, data)        whole clusters; ENOTSUP with a data file
 *     flush()                              metadata caches, then data file, then image file
 *     blockStatus(offset, length) -> Qcow2BlockStatus (one run)
 *     detectMetadataPreallocation(allocatedBytes) -> boolean
 *     resize(newSize, {prealloc, zeroNewArea})
 *     setBacking(reader | null)
 *     createSnapshot(info) -> id, applySnapshot(idOrName), deleteSnapshot(id, name),
 *     listSnapshots()
 *     check(repair?: 'none'|'leaks'|'all') -> Qcow2CheckResult
 *     amend(opts: Qcow2AmendOptions), changeBackingFile(file?, format?), makeEmpty()
 *     loadSnapshotTemporarily(id?, name?) (read-only images), listBitmaps()
 *   measureQcow2(opts: Qcow2MeasureOptions, input?: MeasureInput) -> Qcow2MeasureResult
 *     close() -> string[]                  flush + clear dirty bit; messages of failures
 *
 * Offsets and lengths are plain numbers (exact up to 2^53); requests must lie within the
 * virtual size (EIO otherwise, as the block layer refuses them before the driver).
 */
export { createQcow2, validateCreateOptions, validateClusterSize } from './create.ts';
export type { Qcow2CreateOptions } from './create.ts';
export { openQcow2, Qcow2Image } from './image.ts';
export type { Qcow2OpenOptions, Qcow2HeaderInfo } from './image.ts';
export type { Qcow2BlockStatus } from './rw.ts';
export type { GuestReader } from './state.ts';
export type { BitmapInfo } from './header.ts';
export type { Prealloc, ResizeOptions } from './resize.ts';
export type { Snapshot } from './snapshot-types.ts';
export type { CheckFix, CheckMessage, Qcow2CheckResult } from './check.ts';
export type { Qcow2AmendOptions } from './amend.ts';
export { measureQcow2, calcPreallocSize } from './measure.ts';
export type { Qcow2MeasureOptions, Qcow2MeasureResult, MeasureInput } from './measure.ts';
export type { SnapshotCreateInfo } from './snapshot.ts';
export { Qcow2Error, Qcow2CorruptionError, corruptionLine } from './errors.ts';
export type { CorruptionEvent } from './errors.ts';
