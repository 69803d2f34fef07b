/**
 * qtest's qcow2 engine: a TypeScript implementation of the qcow2 format with QEMU 7.2's
 * on-disk layout and allocation order (images are byte-identical to QEMU's for the same
 * operations, except where QEMU itself is not deterministic: parallel compressed writes).
 * It knows nothing about tools or text output. Errors are ErrnoError subclasses:
 * Qcow2Error carries errno + QEMU's message (no program/file prefix); a corrupt image makes
 * the request fail with Qcow2CorruptionError (EIO, strerror message) after reporting a
 * CorruptionEvent (print it with corruptionLine()) and, when writable, setting the corrupt
 * bit; the image then answers ENOMEDIUM, like QEMU after it drops the driver.
 *
 * Storage only: the engine reads and writes the image file, the external data file and the
 * backing node exclusively through objects handed in by the caller (Storage, GuestReader).
 * It never opens a path: a data file named in the header is opened by the caller's
 * `openDataFile(name)` callback (the name as stored; resolving it is the caller's policy),
 * the backing chain by the caller (using header.backingFile / header.backingFormat) and
 * attached with `backing` at open or setBacking().
 *
 * Public API
 *   createQcow2(file: Storage, opts: Qcow2CreateOptions, dataFile?: Storage): void
 *       Formats an empty `file` (qemu-img create / blockdev-create); grows dataFile to the
 *       size (or preallocates it for data_file_raw). Throws Qcow2Error on invalid options.
 *   validateCreateOptions(opts) -> { version, clusterSize, prealloc }     (no I/O)
 *   validateClusterSize(clusterSize, extendedL2): void
 *   measureQcow2(opts: Qcow2MeasureOptions, input?: MeasureInput) -> Qcow2MeasureResult
 *   calcPreallocSize(size, clusterSize, refcountOrder, extendedL2) -> number
 *   openQcow2(opts: Qcow2OpenOptions): Qcow2Image
 *       opts: file, readOnly?, dataFile?, openDataFile?, backing?, check? (BDRV_O_CHECK),
 *       noIo?, noFlush? (cache=unsafe), passDiscardRequest? (default true, BDRV_O_UNMAP),
 *       passDiscardSnapshot?, passDiscardOther?, lazyRefcounts?, onCorruption?, onWarning?,
 *       overlapCheck? (mask of 1 << bit of OVERLAP_CHECK_NAMES[bit]; default: the "cached"
 *       template of OVERLAP_CHECK_TEMPLATES, as QEMU)
 *       A dirty image opened read/write is repaired first (messages go to onWarning).
 *   class Qcow2Image
 *     readonly header: Qcow2HeaderInfo; virtualSize; clusterSize; readOnly; dataStorage;
 *     hasExternalDataFile; snapshots: Snapshot[]; backing: GuestReader | null
 *     read(offset, buf): void              unallocated -> backing (zero past its end) or 0
 *     write(offset, data): void            allocation + copy-on-write of partial clusters
 *     writeZeroes(offset, length, { unmap? }): void
 *                                          the block layer's split: zero flags for aligned
 *                                          parts, explicit zeroes where the rest of a
 *                                          subcluster does not read as zero
 *     discard(offset, length): void        whole clusters only (zero flag on v3)
 *     writeCompressed(offset, data): void  whole clusters; ENOTSUP with a data file,
 *                                          EIO over allocated clusters (as QEMU)
 *     flush(): void                        L2/refcount caches, data file, image file
 *     blockStatus(offset, length) -> Qcow2BlockStatus   one run: { length, kind, hostOffset?,
 *                                          inDataFile }; kind: unallocated | unallocated-alloc
 *                                          | zero | zero-alloc | data | compressed
 *     detectMetadataPreallocation(allocatedBytes) -> boolean   (BDRV_BLOCK_RECURSE)
 *     resize(newSize, { prealloc?, zeroNewArea? }): void   (zeroNewArea defaults to "backing
 *                                          longer than the old size", as the block layer)
 *     setBacking(reader | null): void
 *     createSnapshot(info: SnapshotCreateInfo) -> id; applySnapshot(idOrName);
 *     deleteSnapshot(id?, name?); listSnapshots() -> Snapshot[] (ENOTSUP with data file);
 *     loadSnapshotTemporarily(id?, name?)  (read-only images)
 *     check(repair: 'none' | 'leaks' | 'all' = 'none', onMessage?) -> Qcow2CheckResult
 *                                          counts + stderr lines in QEMU's order (streamed
 *                                          to onMessage instead, when given)
 *     amend(opts: Qcow2AmendOptions): void  (opts.onProgress: QEMU's amend progress;
 *                                          opts.onReport: messages QEMU error_report()s)
 *     changeBackingFile(file?, format?): void;
 *     makeEmpty(): void; listBitmaps() -> BitmapInfo[]
 *     updateHeader(): void; markClean(): void
 *     close() -> string[]                  flush + clear the dirty bit; QEMU's messages of
 *                                          failures (close itself never throws)
 *
 *   setStrictErrors(enabled)             fuzzing: internal errors (engine bugs) escape with
 *                                          their stack instead of becoming EIO
 *
 * Offsets and lengths are plain numbers (exact up to 2^53); guest requests must lie within
 * the virtual size (EIO otherwise; the block layer refuses those before the driver).
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
export { Qcow2Error, Qcow2CorruptionError, corruptionLine, setStrictErrors } from './errors.ts';
export { OVERLAP_CHECK_NAMES, OVERLAP_CHECK_TEMPLATES } from './metadata.ts';
export type { CorruptionEvent } from './errors.ts';
