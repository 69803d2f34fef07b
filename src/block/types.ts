/**
 * The block layer's contract: a graph of nodes, each a driver instance (file, raw, qcow2,
 * blkdebug, null-co) with named children, all speaking guest-visible byte ranges. Tool front
 * ends (qemu-img, qemu-io, the QMP server) only ever use this interface; the qcow2 engine in
 * src/qcow2 is wrapped by the qcow2 driver in src/block/drivers.
 *
 * Synchronous by design (see src/storage/types.ts). Failures throw ErrnoError (src/errno.ts)
 * whose message is QEMU's wording when QEMU has one, or BlockOpenError at open time.
 */

export type Prealloc = 'off' | 'metadata' | 'falloc' | 'full';

export interface WriteFlags {
  /** Force unit access: the data is stable when the call returns (writethrough). */
  fua?: boolean;
}

export interface ZeroFlags extends WriteFlags {
  /** The range may be deallocated instead of written (qemu-io `write -z -u`). */
  unmap?: boolean;
  /**
   * BDRV_REQ_NO_FALLBACK: only zero the range if the driver can do it without writing a zero
   * buffer; ENOTSUP otherwise (qcow2's handle_alloc_space, qemu-io `write -z -n`).
   */
  noFallback?: boolean;
}

/** One run of uniform status, as bdrv_block_status reports it for a single node. */
export interface BlockStatus {
  /** Bytes from the queried offset that share this status (> 0, <= the queried length). */
  length: number;
  /** Described by this node itself; false means the range falls through to the backing node. */
  allocated: boolean;
  /** Reads return data stored for this range (BDRV_BLOCK_DATA). */
  data: boolean;
  /** Reads return zeroes (BDRV_BLOCK_ZERO). */
  zero: boolean;
  /** Stored compressed (qcow2). */
  compressed: boolean;
  /** Where the bytes live, when they are stored as-is in one node: offset in `file`. */
  offset?: number;
  /** The node holding the bytes at `offset` (a protocol node: file, or the data file). */
  file?: BlockNode;
}

/** Which child roles QEMU uses; map keys of BlockNode.children. */
export type ChildRole = 'file' | 'backing' | 'data-file' | 'image';

export interface BlockNode {
  /** Driver name as QEMU prints it: 'file', 'raw', 'qcow2', 'blkdebug', 'null-co'. */
  readonly driver: string;
  /** node-name; auto-generated ones look like QEMU's ('#block123'). */
  readonly nodeName: string;
  /**
   * bs->filename: the path for file nodes and formats over them, a `json:{...}` text when the
   * node cannot be described by a plain filename.
   */
  readonly filename: string;
  readonly readOnly: boolean;
  readonly children: ReadonlyMap<ChildRole, BlockNode>;
  /** Guest-visible length in bytes. */
  length(): number;
  /** Read exactly buf.length bytes at offset; the range must lie within length(). */
  read(offset: number, buf: Uint8Array): void;
  write(offset: number, data: Uint8Array, flags?: WriteFlags): void;
  writeZeroes(offset: number, length: number, flags?: ZeroFlags): void;
  /** Compressed write of whole clusters; ENOTSUP where the driver cannot. */
  writeCompressed(offset: number, data: Uint8Array): void;
  discard(offset: number, length: number): void;
  flush(): void;
  truncate(size: number, opts: { exact: boolean; prealloc: Prealloc; shrinkAllowed: boolean }): void;
  /** Status of the run starting at offset, at most length bytes, for this node alone. */
  blockStatus(offset: number, length: number): BlockStatus;
  /**
   * Copy offloading (copy_file_range and friends) from this node into dest; ENOTSUP when
   * either side cannot, in which case callers fall back to read + write as QEMU does.
   */
  copyRangeTo(dest: BlockNode, srcOffset: number, destOffset: number, length: number): void;
  /** Allocation granularity for alignment decisions (cluster size for qcow2, 512 otherwise). */
  readonly clusterSize: number;
  close(): void;
}
