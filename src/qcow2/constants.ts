/**
 * qcow2 on-disk constants (docs/interop/qcow2.txt) and the limits QEMU 7.2 enforces.
 * Feature fields are 64-bit on disk; they are handled as bigint where they are parsed.
 */

export const QCOW_MAGIC = 0x514649fb; // 'Q' 'F' 'I' 0xfb

export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
export const DEFAULT_CLUSTER_SIZE = 65536;

/** sizeof(QCowHeader) in QEMU 7.2: 104 bytes of v3 fields, the compression type byte, padding. */
export const HEADER_SIZE_V3 = 112;
export const HEADER_SIZE_V2 = 72;
export const HEADER_MIN_LENGTH_V3 = 104;
/** offsetof(QCowHeader, compression_type) */
export const COMPRESSION_TYPE_OFFSET = 104;

// Offsets of header fields that QEMU rewrites in place.
export const HEADER_OFF_SIZE = 24;
export const HEADER_OFF_L1_SIZE = 36;
export const HEADER_OFF_REFTABLE_OFFSET = 48;
export const HEADER_OFF_SNAPSHOTS = 60;
export const HEADER_OFF_INCOMPAT = 72;

export const QCOW_MAX_REFTABLE_SIZE = 8 * 1024 * 1024;
export const QCOW_MAX_L1_SIZE = 32 * 1024 * 1024;
export const QCOW_MAX_SNAPSHOTS = 65536;
export const QCOW_MAX_SNAPSHOTS_SIZE = 1024 * QCOW_MAX_SNAPSHOTS;
export const QCOW_MAX_SNAPSHOT_EXTRA_DATA = 1024;
export const QCOW2_MAX_BITMAPS = 65535;
export const QCOW2_MAX_BITMAP_DIRECTORY_SIZE = 1024 * QCOW2_MAX_BITMAPS;
/** sizeof(QCowSnapshotHeader) */
export const SNAPSHOT_HEADER_SIZE = 40;
/** sizeof(bs->backing_format): the backing format extension must be shorter. */
export const BACKING_FORMAT_MAX = 16;
/** sizeof(bs->backing_file) */
export const BACKING_FILE_MAX = 4096;
export const INT_MAX = 0x7fffffff;
/** BDRV_REQUEST_MAX_BYTES */
export const REQUEST_MAX_BYTES = 2147483136;

export const INCOMPAT_DIRTY = 1n;
export const INCOMPAT_CORRUPT = 2n;
export const INCOMPAT_DATA_FILE = 4n;
export const INCOMPAT_COMPRESSION = 8n;
export const INCOMPAT_EXTL2 = 16n;
export const INCOMPAT_MASK = 0x1fn;

export const COMPAT_LAZY_REFCOUNTS = 1n;

export const AUTOCLEAR_BITMAPS = 1n;
export const AUTOCLEAR_DATA_FILE_RAW = 2n;
export const AUTOCLEAR_MASK = 3n;

export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_CRYPTO_HEADER = 0x0537be77;
export const EXT_BITMAPS = 0x23852875;
export const EXT_DATA_FILE = 0x44415441;

export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

export const CRYPT_NONE = 0;
export const CRYPT_AES = 1;
export const CRYPT_LUKS = 2;

// L1/L2/refcount table entry bits, split into the high and low 32-bit words of the entry.
/** QCOW_OFLAG_COPIED, bit 63 */
export const HI_COPIED = 0x80000000;
/** QCOW_OFLAG_COMPRESSED, bit 62 */
export const HI_COMPRESSED = 0x40000000;
/** QCOW_OFLAG_ZERO, bit 0 */
export const LO_ZERO = 1;
/** L2E_OFFSET_MASK / L1E_OFFSET_MASK = 0x00fffffffffffe00 */
export const HI_OFFSET_MASK = 0x00ffffff;
export const LO_OFFSET_MASK = 0xfffffe00;
/** L1E_RESERVED_MASK = 0x7f000000000001ff */
export const L1_HI_RESERVED = 0x7f000000;
export const L1_LO_RESERVED = 0x1ff;
/** L2E_STD_RESERVED_MASK = 0x3f000000000001fe */
export const L2_HI_RESERVED = 0x3f000000;
export const L2_LO_RESERVED = 0x1fe;
/** REFT_RESERVED_MASK = 0x1ff */
export const REFT_LO_RESERVED = 0x1ff;

export const SUBCLUSTERS_PER_CLUSTER = 32;
/** QCOW_L2_BITMAP_ALL_ALLOC: low 32 bits of the bitmap word */
export const BITMAP_ALL = 0xffffffff;

export const COMPRESSED_SECTOR_SIZE = 512;

export const TWO32 = 4294967296;
