/**
 * bdrv_query_image_info: what `qemu-img info` prints and QMP's query-named-block-nodes puts
 * under "image", from a node of the block graph.
 */
import type { BlockNode } from '../../block/types.ts';
import { fullBackingFilename } from '../../block/create.ts';
import { formatSpecific, qcow2Of, snapshotsOf } from './engine.ts';
import type { ImageInfo } from './format.ts';

/**
 * bdrv_get_allocated_file_size: files report their blocks, null devices 0, other protocol
 * drivers (blkdebug) nothing; formats sum their data children.
 */
function allocatedFileSize(node: BlockNode): number | undefined {
  const withAlloc = node as unknown as { allocatedBytes?: () => number };
  if (typeof withAlloc.allocatedBytes === 'function') return withAlloc.allocatedBytes();
  if (node.driver === 'null-co' || node.driver === 'null-aio') return 0;
  if (node.driver === 'blkdebug') return undefined;
  let sum = 0;
  for (const [role, child] of node.children) {
    if (role === 'backing') continue;
    const n = allocatedFileSize(child);
    if (n === undefined) return undefined;
    sum += n;
  }
  return sum;
}

/** bdrv_query_image_info */
export function queryImageInfo(node: BlockNode): ImageInfo {
  const info: ImageInfo = { filename: node.filename, format: node.driver, virtualSize: node.length() };
  const actual = allocatedFileSize(node);
  if (actual !== undefined) info.actualSize = actual;
  const q = qcow2Of(node);
  if (q) {
    const h = q.header;
    info.clusterSize = h.clusterSize;
    info.dirtyFlag = h.dirty;
    if (h.cryptMethod !== 0) info.encrypted = true;
    if (h.backingFile) {
      info.backingFilename = h.backingFile;
      try {
        info.fullBackingFilename = fullBackingFilename(node.filename, h.backingFile);
      } catch {
        // "cannot determine actual path"
      }
      if (h.backingFormat) info.backingFilenameFormat = h.backingFormat;
    }
    const snaps = snapshotsOf(node);
    if (snaps.length > 0 && !q.hasExternalDataFile) info.snapshots = snaps;
    const spec = formatSpecific(node);
    if (spec) info.formatSpecific = spec;
  } else if (hasDriverInfo(node)) {
    info.dirtyFlag = false;
  }
  return info;
}

/** Whether bdrv_get_info succeeds: raw passes it to its file, which only file-posix answers. */
function hasDriverInfo(node: BlockNode): boolean {
  if (node.driver === 'file') return true;
  if (node.driver === 'raw') {
    const file = node.children.get('file');
    return file !== undefined && hasDriverInfo(file);
  }
  return false;
}

