/**
 * The `qcow2` format driver: the engine in src/qcow2 over block nodes. The image file, the
 * external data file and the backing chain are nodes opened by the block layer (so a blkdebug
 * filter can sit between qcow2 and its data file); the engine sees them as Storage and
 * GuestReader views.
 *
 * QEMU's order is kept where it shows: an explicitly given data-file child is opened before
 * the image's feature checks (so `data-file.filename=inexistent` fails with "Could not open
 * 'inexistent'" even for an image without external data file), a data file named in the
 * header is opened by name relative to the process's cwd without protocol parsing, and the
 * backing file is opened after the image with the header's format and relative name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, ErrnoError } from '../../errno.ts';
import { openQcow2, Qcow2Error, Qcow2Image, corruptionLine, type GuestReader, type Qcow2BlockStatus } from '../../qcow2/index.ts';
import { readGuest, writeGuest } from '../../qcow2/rw.ts';
import { BlockOpenError } from '../errors.ts';
import { BaseNode, debugEventOn, type NodeInfo, type TruncateOptions } from '../node.ts';
import { NodeStorage } from '../storage-adapter.ts';
import type { Storage } from '../../storage/types.ts';
import { blockStatusAbove, isAllocated } from '../status.ts';
import type { BlockDriverDef, DriverOpenContext } from './types.ts';
import type { BlockNode, BlockStatus } from '../types.ts';
import { isQcow2Header } from './probe.ts';
import { checkQcow2RuntimeOptions, overlapCheckMask, takeQcow2RuntimeOptions } from './qcow2-options.ts';
import { FileNode } from './file.ts';

export class Qcow2Node extends BaseNode {
  /** The engine image (qemu-img's format operations use it directly). */
  readonly image: Qcow2Image;
  readonly file: BaseNode;
  /** The external data file node, when the image has one. */
  readonly dataFile: BaseNode | undefined;
  /** The backing file name as stored in the header (bs->backing_file), or ''. */
  readonly backingFileName: string;
  private readonly reportClose: (message: string) => void;

  constructor(
    nodeName: string,
    readOnly: boolean,
    image: Qcow2Image,
    file: BaseNode,
    dataFile: BaseNode | undefined,
    reportClose: (message: string) => void,
  ) {
    super('qcow2', nodeName, readOnly);
    this.image = image;
    this.file = file;
    this.dataFile = dataFile;
    this.backingFileName = image.header.backingFile ?? '';
    this.reportClose = reportClose;
    this.children.set('file', file);
    if (dataFile) this.children.set('data-file', dataFile);
  }

  protected override get canCompress(): boolean {
    return true;
  }
  override get clusterSize(): number {
    return this.image.clusterSize;
  }

  get backing(): BaseNode | undefined {
    return this.children.get('backing') as BaseNode | undefined;
  }

  protected getLength(): number {
    return this.image.virtualSize;
  }

  protected doRead(offset: number, buf: Uint8Array): void {
    debugEventOn(this.file, 'read_aio');
    this.image.read(offset, buf);
  }

  protected doWrite(offset: number, data: Uint8Array): void {
    debugEventOn(this.file, 'write_aio');
    this.image.write(offset, data);
  }

  /** qcow2_open: v3 images take BDRV_REQ_NO_FALLBACK (zero flags never write zeroes). */
  override get supportsNoFallbackZeroes(): boolean {
    return this.image.header.version >= 3;
  }

  protected override doWriteZeroes(offset: number, length: number, unmap: boolean, _fua: boolean, noFallback: boolean): void {
    this.image.writeZeroes(offset, length, { unmap, noFallback });
  }

  protected override doWriteCompressed(offset: number, data: Uint8Array): void {
    this.image.writeCompressed(offset, data);
  }

  protected override doDiscard(offset: number, length: number): void {
    this.image.discard(offset, length);
  }

  protected override doFlushToOs(): void {
    this.image.flush();
  }

  protected override doTruncate(size: number, opts: TruncateOptions): void {
    this.image.resize(size, { prealloc: opts.prealloc, shrink: opts.shrinkAllowed });
  }

  protected override doBlockStatus(offset: number, length: number): BlockStatus {
    const s: Qcow2BlockStatus = this.image.blockStatus(offset, length);
    const status: BlockStatus = { length: s.length, allocated: false, data: false, zero: false, compressed: false };
    switch (s.kind) {
      case 'data':
        status.allocated = true;
        status.data = true;
        break;
      case 'compressed':
        status.allocated = true;
        status.data = true;
        status.compressed = true;
        break;
      case 'zero':
      case 'zero-alloc':
        status.allocated = true;
        status.zero = true;
        break;
      case 'unallocated':
      case 'unallocated-alloc': {
        // supports_backing: without a backing file (or past its end) the range reads as zeroes.
        const backing = this.backing;
        if (!backing || offset >= backing.length()) status.zero = true;
        break;
      }
    }
    if (s.hostOffset !== undefined && s.kind !== 'compressed') {
      status.offset = s.hostOffset;
      status.file = s.inDataFile && this.dataFile ? this.dataFile : this.file;
    }
    if (status.data && status.offset !== undefined && status.file && this.hasMetadataPreallocation()) {
      this.recurseIntoFile(status, status.file, status.offset);
    }
    return status;
  }

  /** qcow2_detect_metadata_preallocation, asked once per node as QEMU does. */
  private metadataPreallocation: boolean | undefined;

  private hasMetadataPreallocation(): boolean {
    if (this.metadataPreallocation === undefined) {
      const host = hostFileOf(this.file);
      this.metadataPreallocation = host !== undefined && this.image.detectMetadataPreallocation(host.allocatedBytes());
    }
    return this.metadataPreallocation;
  }

  /**
   * BDRV_BLOCK_RECURSE: in a metadata-preallocated image every cluster is allocated, so the
   * host file tells which data clusters still read as zeroes (holes, or past its end).
   */
  private recurseIntoFile(status: BlockStatus, file: BlockNode, hostOffset: number): void {
    try {
      if (hostOffset >= file.length()) {
        status.zero = true;
        return;
      }
      const f = file.blockStatus(hostOffset, status.length);
      status.length = f.length;
      if (f.zero) status.zero = true;
    } catch {
      // The file's status only adds information; QEMU ignores its errors.
    }
  }

  protected override doCopyRangeTo(): void {
    // Copy offloading is not implemented for qcow2; callers fall back to read + write.
    throw new ErrnoError(Errno.ENOTSUP);
  }

  /** qcow2_vm_state_offset: the VM state lives past the guest disk, from this L1 index on. */
  private vmStateOffset(): number {
    const st = this.image.state as unknown as { l1VmStateIndex: number; l2Bits: number; clusterBits: number };
    return st.l1VmStateIndex * 2 ** (st.clusterBits + st.l2Bits);
  }

  override getInfo(): NodeInfo {
    return { clusterSize: this.image.clusterSize, vmStateOffset: this.vmStateOffset() };
  }

  /** bdrv_load_vmstate (qemu-io read -b): guest-path read in the VM state area. */
  loadVmState(pos: number, buf: Uint8Array): void {
    try {
      readGuest(this.image.state, this.vmStateOffset() + pos, buf);
    } catch (err) {
      throw err instanceof ErrnoError ? err : new ErrnoError(Errno.EIO);
    }
  }

  /** bdrv_save_vmstate (qemu-io write -b). */
  saveVmState(pos: number, data: Uint8Array): void {
    if (this.readOnly) throw new ErrnoError(Errno.EPERM);
    try {
      writeGuest(this.image.state, this.vmStateOffset() + pos, data);
    } catch (err) {
      throw err instanceof ErrnoError ? err : new ErrnoError(Errno.EIO);
    }
  }

  protected override doClose(): void {
    for (const msg of this.image.close()) this.reportClose(msg);
  }

  protected override doSetReadOnly(readOnly: boolean): void {
    if (!readOnly && this.readOnly) this.image.flush();
    this.image.state.readOnly = readOnly;
  }

  protected override refreshExactFilename(generateJson: boolean): void {
    super.refreshExactFilename(generateJson);
  }
}

/** The host file under a node (through filters), for its real allocation. */
function hostFileOf(node: BlockNode | undefined): FileNode | undefined {
  let n = node;
  while (n instanceof BaseNode && !(n instanceof FileNode)) n = n.primaryChild();
  return n instanceof FileNode ? n : undefined;
}

/** Incompatible feature bit 2 (external data file) in the header of a qcow2 v3 image. */
function hasDataFileBit(file: BaseNode): boolean {
  const hdr = new Uint8Array(80);
  try {
    file.read(0, hdr);
  } catch {
    return false;
  }
  const version = new DataView(hdr.buffer).getUint32(4);
  return version >= 3 && (hdr[79]! & 0x4) !== 0;
}

/** Stands for a data file that a metadata-only open does not open; any I/O fails. */
function unavailableStorage(name: string): Storage {
  const fail = (): never => {
    throw new ErrnoError(Errno.EIO);
  };
  return { filename: name, readOnly: true, size: () => 0, read: fail, write: fail, writeZeroes: fail, discard: fail, truncate: fail, flush: () => {}, close: () => {} };
}

/** A GuestReader over the backing node for the engine's fall-through reads. */
function backingReader(node: BaseNode): GuestReader {
  return {
    length: () => node.length(),
    read: (offset, buf) => node.read(offset, buf),
    isZero: (offset, length) => {
      let pos = offset;
      const end = offset + length;
      const len = node.length();
      while (pos < end) {
        if (pos >= len) return true;
        const s = blockStatusAbove(node, pos, end - pos);
        if (!s.status.zero) return false;
        pos += s.status.length;
      }
      return true;
    },
    isAllocated: (offset, length) => {
      // bdrv_is_allocated_above below the image: every layer is an intermediate one, whose
      // shorter run only counts while it ends inside that layer.
      let n = length;
      for (let layer: BlockNode | undefined = node; layer; layer = layer.children.get('backing')) {
        const r = isAllocated(layer, offset, n);
        if (r.allocated) return true;
        if (n > r.pnum && offset + r.pnum < layer.length()) n = r.pnum;
      }
      return n < length;
    },
  };
}

/** bdrv_dirname: the directory part of the image's plain name, with a trailing slash. */
function dirnameOf(node: BaseNode): string | undefined {
  let n: BaseNode | undefined = node;
  while (n && !(n instanceof FileNode) && n.primaryChild()) n = n.primaryChild() as BaseNode;
  const name = n?.exactFilename;
  if (!name) return undefined;
  const slash = name.lastIndexOf('/');
  return slash < 0 ? '' : name.slice(0, slash + 1);
}

/** bdrv_make_absolute_filename for the header's backing file name. */
function fullBackingName(file: BaseNode, backing: string): string {
  if (/^[^:/]*:/.test(backing) || path.isAbsolute(backing)) return backing;
  const dir = dirnameOf(file);
  if (dir === undefined) {
    throw new BlockOpenError(`Cannot generate a base directory for ${file.driver} nodes`);
  }
  return dir + backing;
}

function openQcow2Driver(ctx: DriverOpenContext): BaseNode {
  const runtime = takeQcow2RuntimeOptions(ctx.options);
  const bools = runtime.bools;
  const file = ctx.file;
  if (!file) throw new BlockOpenError('A block device must be specified for "file"');

  const report = (m: string): void => (ctx.env.report ? ctx.env.report(m) : ctx.env.stderr(`${m}\n`));
  const explicitData = ctx.openChild({ role: 'data-file', allowNone: true });
  let headerData: BaseNode | undefined;
  // BDRV_O_NO_IO: an image that needs a data file opens without one (its name may be gone).
  const placeholder = ctx.noIo && !explicitData && hasDataFileBit(file) ? unavailableStorage('') : null;
  let image: Qcow2Image;
  try {
    image = openQcow2({
      file: new NodeStorage(file),
      readOnly: ctx.readOnly,
      dataFile: explicitData ? new NodeStorage(explicitData) : placeholder,
      openDataFile: (name) => {
        // BDRV_O_NO_IO (qemu-img info): the data file named in the header is not opened.
        if (ctx.noIo) return unavailableStorage(name);
        headerData = ctx.openChild({ role: 'data-file', filename: name, parseFilename: false, allowNone: false });
        return new NodeStorage(headerData!);
      },
      passDiscardRequest: bools.get('pass-discard-request'),
      passDiscardSnapshot: bools.get('pass-discard-snapshot'),
      passDiscardOther: bools.get('pass-discard-other'),
      lazyRefcounts: bools.get('lazy-refcounts'),
      overlapCheck: overlapCheckMask(runtime),
      noIo: ctx.noIo,
      check: ctx.check === true,
      onCorruption: (ev) => ctx.env.stderr(`${corruptionLine(ev)}\n`),
      onWarning: (m) => ctx.env.warn?.(m),
      onStderr: (t) => ctx.env.stderr(t),
    });
  } catch (err) {
    explicitData?.close();
    headerData?.close();
    if (err instanceof BlockOpenError) throw err;
    if (err instanceof ErrnoError) throw new BlockOpenError(err.message, err.errno, err instanceof Qcow2Error ? err.hint : undefined);
    throw err;
  }
  try {
    const h = image.header;
    checkQcow2RuntimeOptions(runtime, { clusterSize: h.clusterSize, virtualSize: h.size, l2EntrySize: h.extendedL2 ? 16 : 8, version: h.version });
  } catch (err) {
    image.close();
    explicitData?.close();
    headerData?.close();
    throw err;
  }
  const dataNode = image.hasExternalDataFile ? (explicitData ?? headerData) : undefined;
  const node = new Qcow2Node(ctx.nodeName, ctx.readOnly, image, file, dataNode, report);

  try {
    openBacking(ctx, node, file);
  } catch (err) {
    node.close();
    // The depth limit is reported once, not once per level of a 500-image chain.
    if (err instanceof ChainTooDeepError) throw err.wrapped ? err : new ChainTooDeepError(`Could not open backing file: ${err.message}`, true);
    if (err instanceof BlockOpenError) throw new BlockOpenError(`Could not open backing file: ${err.message}`, err.errno, err.hint);
    throw err;
  }
  return node;
}

/**
 * Image files whose header-named backing chain is being opened, outermost first. QEMU 7.2
 * follows a chain that loops back on itself until it runs out of memory, and a chain deeper
 * than the call stack would overflow it here (reads recurse once per level): both stop with
 * a message instead (found by tests/robustness: "Maximum call stack size exceeded").
 */
const openingChain: string[] = [];
const MAX_BACKING_CHAIN = 500;

class ChainTooDeepError extends BlockOpenError {
  readonly wrapped: boolean;
  constructor(message: string, wrapped: boolean) {
    super(message);
    this.wrapped = wrapped;
  }
}

/** The path of the host file under a node, symlinks resolved; undefined for other nodes. */
function realHostPath(node: BaseNode): string | undefined {
  const f = hostFileOf(node);
  return f ? realPathOr(f.absPath) : undefined;
}

function realPathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** Refuse a header-named backing file that is already in the chain, or one level too many. */
function guardBackingChain(ctx: DriverOpenContext, file: BaseNode, filename: string): string | undefined {
  const self = realHostPath(file);
  if (openingChain.length >= MAX_BACKING_CHAIN) {
    throw new ChainTooDeepError(`Backing chains deeper than ${MAX_BACKING_CHAIN} images are not supported by the built-in engine`, false);
  }
  if (/^[^:/]*:/.test(filename)) return self;
  const target = realPathOr(path.resolve(ctx.env.cwd, filename));
  if (target === self || openingChain.includes(target)) {
    throw new BlockOpenError(`Backing file '${filename}' is already part of this backing chain (the chain loops)`);
  }
  return self;
}

/** bdrv_open_backing_file for a qcow2 node. */
function openBacking(ctx: DriverOpenContext, node: Qcow2Node, file: BaseNode): void {
  const header = node.image.header;
  const headerName = header.backingFile ?? '';
  if (ctx.noBacking) {
    // backing: null; the header's backing file is suppressed.
    node.backingOverridden = headerName !== '';
    for (const k of ctx.options.keys()) if (k === 'backing' || k.startsWith('backing.')) ctx.options.take(k);
    return;
  }
  const reference = ctx.options.peek('backing');
  const hasOptions = ctx.options.keys().some((k) => k.startsWith('backing.'));
  const explicitFile = ctx.options.has('backing.file.filename');
  if (typeof reference !== 'string' && !hasOptions && headerName === '') return;
  const implicit = typeof reference !== 'string' && !hasOptions;
  let filename: string | undefined;
  if (typeof reference !== 'string' && !explicitFile) filename = fullBackingName(file, headerName);
  // An empty backing format (extension of length 0, or a name starting with NUL) means
  // "probe", as QEMU only passes a non-empty bs->backing_format on.
  const format = typeof reference === 'string' || ctx.options.has('backing.driver') || !header.backingFormat ? undefined : header.backingFormat;
  const self = implicit && filename !== undefined ? guardBackingChain(ctx, file, filename) : undefined;
  if (self !== undefined) openingChain.push(self);
  let backing: BaseNode | undefined;
  try {
    backing = ctx.openChild({ role: 'backing', filename, format, readOnly: true, allowNone: true });
  } finally {
    if (self !== undefined) openingChain.pop();
  }
  if (!backing) return;
  attachBacking(node, backing);
  backing.refreshFilename();
  node.backingOverridden = !implicit && headerName !== backing.filename;
}

/** Make `backing` the backing node of a qcow2 node (open time, or a temporary overlay). */
export function attachBacking(node: Qcow2Node, backing: BaseNode): void {
  node.children.set('backing', backing);
  node.image.setBacking(backingReader(backing));
}

export const qcow2Driver: BlockDriverDef = {
  name: 'qcow2',
  protocol: false,
  supportsBacking: true,
  probe: (header) => (isQcow2Header(header) ? 100 : 0),
  open: openQcow2Driver,
};

export function isQcow2Node(node: BlockNode): node is Qcow2Node {
  return node instanceof Qcow2Node;
}
