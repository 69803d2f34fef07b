/**
 * The block layer's public API for front ends (qemu-io, qemu-img, QMP).
 *
 *   openImage({ filename?, options?, format?, readOnly?, cache?, unmap?, forceShare?, noBacking? },
 *             { cwd, pathPolicy?, graph?, stderr?, warn? }) -> BlockBackend
 *       blk_new_open: json:/protocol filenames, -f, -o/--image-opts trees (nested or dotted),
 *       probing, QEMU's error texts (throws BlockOpenError / OptionsError; `.message` is the
 *       text QEMU prints after "can't open device X: " or "Could not open 'X': ").
 *   openBlockdev(options, env, flags?) -> BaseNode          (blockdev-add; discard=ignore)
 *   BlockBackend: read/write/writeZeroes/writeCompressed/discard/flush/truncate/blockStatus,
 *       length(), getInfo(), requireWrite(), close(); root: BaseNode; writeCache.
 *   BaseNode (implements BlockNode from ./types.ts) plus: filename, exactFilename,
 *       fullOpenOptions, protocolName, getInfo(), refreshFilename(), debugEvent().
 *   BlockGraph: node-name registry (get/add/remove/nodes/generateName).
 *   parseOptsString(text, {impliedName?, mergeLists?, onWarning?}) -> flat QDict  (QemuOpts)
 *   parseJsonFilename('json:{...}') -> flat QDict;  parseQemuJson(text) -> QValue
 *   QDict (ordered Map), flatten/crumple, toJson (QEMU key order), qdictOrder.
 *   parseCacheMode(mode) -> {direct, noFlush, writethrough} | undefined
 *   parseDiscardMode(mode) -> boolean | undefined;  isValidAioMode(mode)
 *   blockStatusAbove / isAllocated helpers: ./status.ts
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
