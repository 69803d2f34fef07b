/**
 * The block layer's public API for front ends (qemu-io, qemu-img, QMP).
 *
 *   openImage(req: OpenImageRequest, ctx: OpenImageContext): BlockBackend       (blk_new_open)
 *     req  { filename?, options?: QDict (nested or dotted), format?, readOnly?, cache?: CacheSettings,
 *            unmap?, forceShare?, noBacking?, aio?, snapshot? (-s overlay), copyOnRead? (-C),
 *            noIo? (BDRV_O_NO_IO), check? (BDRV_O_CHECK: qemu-img check opens damaged images) }
 *     ctx  { cwd, pathPolicy?, graph?: BlockGraph, stderr?(text), stdout?(text) (blkdebug's
 *            breakpoint lines), warn?(msg), report?(msg) }
 *     Throws BlockOpenError / OptionsError whose .message is QEMU's Error text
 *     (SizeOptionError adds .hint). Default cache is writethrough (qemu-io's default).
 *   openBlockdev(options: QDict, env: OpenEnv, flags?: Partial<OpenFlags>): BaseNode   (blockdev-add)
 *   openNode(filename, reference, flatOptions, flags: OpenFlags, env, parseFilename?): BaseNode
 *   BlockBackend: root, writeCache, copyOnRead, allowWriteBeyondEof, dirtySinceFlush;
 *     length(), read(off, buf), write(off, data, {fua?}), writeZeroes(off, len, {unmap?, fua?}),
 *     writeCompressed(off, data), discard(off, len), flush(), truncate(size, {exact, prealloc}),
 *     blockStatus(off, len), getInfo(), requireWrite() (throws 'Block node is read-only'), close().
 *     Requests past the end fail with ErrnoError(EIO) as blk_check_byte_request does.
 *   BaseNode implements BlockNode (./types.ts) plus: filename, exactFilename, fullOpenOptions,
 *     protocolName, isFilter, supportsFuaWrite/Zeroes, exactLength() (length() counts sectors),
 *     getInfo(): {clusterSize, vmStateOffset}, refreshFilename(), debugEvent(event),
 *     setReadOnly(ro) / reopen({readOnly}), primaryChild(), noIo, probed, unmapAllowed, noFlush.
 *   Drivers: FileNode (storage, path, absPath, allocatedBytes()), RawNode, NullNode, BlkdebugNode
 *     (addBreakpoint/removeBreakpoint/resume/isSuspended/takeNewSuspensions: breakpoints hold a
 *     request's completion, see qemu-io), CompressNode (the `compress` filter), Qcow2Node (image:
 *     Qcow2Image, file, dataFile, backing, loadVmState/saveVmState), MemoryNode.
 *   Internal snapshots (block/snapshot.c): snapshotLoadTmp(node, id?, name?),
 *     snapshotLoadTmpByIdOrName(node, s), snapshotGoto(node, s, report) throw SnapshotError.
 *   Secrets and LUKS sizes: SecretStore (define/lookup, QEMU's messages), luksPayloadOffset().
 *   Buffers (zero.ts): isZeroRange, isFilledWith, filledBuffer, rangesEqual, compareSectors,
 *     findNonzeroSector: native memcmp/memset instead of per-byte loops.
 *   BlockGraph: node-name registry (get/has/add/remove/nodes/generateName).
 *   isAllocated(node, off, len) -> {allocated, pnum};  blockStatusAbove(top, off, len) -> {status, depth, node}
 *   NodeStorage: a Storage (src/storage/types.ts) over any node (qcow2 engine's file/data file).
 *   parseOptsString(text, {impliedName?, mergeLists?, onWarning?}) -> flat QDict   (QemuOpts)
 *   parseJsonFilename('json:{...}') -> flat QDict;  parseQemuJson(text) -> QValue
 *   QDict (ordered Map), flatten/crumple, toJson (QEMU key order), qdictOrder, toQValue.
 *   parseCacheMode(mode) -> {direct, noFlush, writethrough} | undefined;
 *   parseDiscardMode(mode) -> boolean | undefined;  isValidAioMode(mode)
 */
export { openImage, openBlockdev, openNode, parseCacheMode, parseDiscardMode, isValidAioMode, DEFAULT_FLAGS } from './open.ts';
export type { OpenImageRequest, OpenImageContext, OpenFlags, CacheSettings, CacheMode } from './open.ts';
export { BlockBackend } from './backend.ts';
export { BaseNode, BDRV_REQUEST_MAX_BYTES } from './node.ts';
export type { NodeInfo, TruncateOptions } from './node.ts';
export { BlockGraph, checkPath, hostPath } from './env.ts';
export type { OpenEnv } from './env.ts';
export { BlockOpenError, OptionsError } from './errors.ts';
export { parseOptsString, parseJsonFilename, isJsonFilename, OptionBag, parseBoolOption, parseSizeOption, parseNumberOption, SizeOptionError } from './options.ts';
export { parseQemuJson } from './json.ts';
export { QDict, flatten, crumple, toJson, qdictOrder, qdictEntries, toQValue } from './qdict.ts';
export type { QValue, QScalar } from './qdict.ts';
export { registerDriver, findDriver } from './drivers/registry.ts';
export { FileNode } from './drivers/file.ts';
export { RawNode } from './drivers/raw.ts';
export { NullNode } from './drivers/null.ts';
export { BlkdebugNode } from './drivers/blkdebug.ts';
export { Qcow2Node, isQcow2Node } from './drivers/qcow2.ts';
export { probeFormat, isQcow2Header } from './drivers/probe.ts';
export { isAllocated, blockStatusAbove } from './status.ts';
export type { StatusAbove } from './status.ts';
export { NodeStorage } from './storage-adapter.ts';
export { MemoryNode } from './drivers/memory.ts';
export { CompressNode } from './drivers/compress.ts';
export { snapshotLoadTmp, snapshotLoadTmpByIdOrName, snapshotGoto, SnapshotError } from './snapshot.ts';
export { SecretStore } from './secrets.ts';
export type { SecretDefinition } from './secrets.ts';
export { luksPayloadOffset } from './crypto.ts';
export { isZeroRange, isFilledWith, filledBuffer, rangesEqual, compareSectors, findNonzeroSector } from './zero.ts';
