/**
 * `qemu-img measure` for qcow2 (qcow2_measure): the size a new image needs, fully
 * allocated and for the data of an optional input image.
 */
import { Errno } from '../errno.ts';
import { DEFAULT_CLUSTER_SIZE, QCOW_MAX_L1_SIZE } from './constants.ts';
import { validateClusterSize } from './create.ts';
import { Qcow2Error } from './errors.ts';
import { refcountMetadataSize } from './refcount.ts';

export interface Qcow2MeasureOptions {
  /** Virtual size (ignored when an input image is given). */
  size?: number;
  clusterSize?: number;
  compat?: '0.10' | '1.1';
  refcountBits?: number;
  preallocation?: 'off' | 'metadata' | 'falloc' | 'full';
  /** Only whether a backing file is set matters. */
  backingFile?: string;
  extendedL2?: boolean;
  /** LUKS encryption is refused. */
  encryptFormat?: string;
}

/** What measure needs from the input image: its length and block status of the whole chain. */
export interface MeasureInput {
  length: number;
  /** Status of the run at offset: zero (reads as zeroes), data + allocated. */
  blockStatus(offset: number, length: number): { length: number; zero: boolean; data: boolean; allocated: boolean };
  /** Sizes of persistent bitmaps (bitmap tables and data), when the input supports them. */
  bitmapsSize?: number;
}

export interface Qcow2MeasureResult {
  required: number;
  fullyAllocated: number;
  /** Present when both input and output could carry persistent bitmaps. */
  bitmaps?: number;
}

/** qcow2_calc_prealloc_size() */
export function calcPreallocSize(totalSize: number, clusterSize: number, refcountOrder: number, extendedL2: boolean): number {
  const aligned = Math.ceil(totalSize / clusterSize) * clusterSize;
  const l2e = extendedL2 ? 16 : 8;
  let meta = clusterSize;
  let nl2e = aligned / clusterSize;
  nl2e = Math.ceil(nl2e / (clusterSize / l2e)) * (clusterSize / l2e);
  meta += nl2e * l2e;
  let nl1e = (nl2e * l2e) / clusterSize;
  nl1e = Math.ceil(nl1e / (clusterSize / 8)) * (clusterSize / 8);
  meta += nl1e * 8;
  meta += refcountMetadataSize((meta + aligned) / clusterSize, clusterSize, refcountOrder, false).bytes;
  return meta + aligned;
}

export function measureQcow2(o: Qcow2MeasureOptions, input?: MeasureInput): Qcow2MeasureResult {
  const extL2 = o.extendedL2 ?? false;
  const clusterSize = o.clusterSize ?? DEFAULT_CLUSTER_SIZE;
  validateClusterSize(clusterSize, extL2);
  const version = o.compat === '0.10' ? 2 : 3;
  const rb = o.refcountBits ?? 16;
  if (rb > 64 || rb <= 0 || (rb & (rb - 1)) !== 0) {
    throw new Qcow2Error(Errno.EINVAL, 'Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (version < 3 && rb !== 16) {
    throw new Qcow2Error(
      Errno.EINVAL,
      'Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)',
    );
  }
  if (o.encryptFormat === 'luks') throw new Qcow2Error(Errno.ENOTSUP, 'LUKS encryption is not supported');
  let virtualSize = Math.ceil((o.size ?? 0) / clusterSize) * clusterSize;
  const l2e = extL2 ? 16 : 8;
  const l2Tables = Math.ceil(virtualSize / clusterSize / (clusterSize / l2e));
  if (l2Tables * 8 > QCOW_MAX_L1_SIZE) {
    throw new Qcow2Error(Errno.EINVAL, 'The image size is too large (try using a larger cluster size)');
  }
  let required = 0;
  if (input) {
    const ssize = input.length;
    virtualSize = Math.ceil(ssize / clusterSize) * clusterSize;
    if (o.backingFile !== undefined) {
      required = virtualSize;
    } else {
      let pnum = 0;
      for (let offset = 0; offset < ssize; offset += pnum) {
        const st = input.blockStatus(offset, ssize - offset);
        pnum = st.length;
        if (st.zero) {
          // Zero regions need no data clusters (safe without a backing file).
        } else if (st.data && st.allocated) {
          pnum = Math.ceil((offset + pnum) / clusterSize) * clusterSize - offset;
          required += (offset % clusterSize) + pnum;
        }
      }
    }
  }
  if (o.preallocation === 'full' || o.preallocation === 'falloc') required = virtualSize;
  const fullyAllocated = calcPreallocSize(virtualSize, clusterSize, Math.log2(rb), extL2);
  const res: Qcow2MeasureResult = { required: fullyAllocated - virtualSize + required, fullyAllocated };
  if (version >= 3 && input && input.bitmapsSize !== undefined) res.bitmaps = input.bitmapsSize;
  return res;
}
