/**
 * Internal snapshots at the block layer (block/snapshot.c in QEMU 7.2): the generic checks
 * and messages around the format driver's snapshot operations, so every front end words
 * them the same way. Only qcow2 nodes have internal snapshots; filters pass the request to
 * their child, other drivers refuse.
 */
import { Errno, ErrnoError, strerror } from '../errno.ts';
import type { BlockNode } from './types.ts';
import { Qcow2Node } from './drivers/qcow2.ts';
import { BaseNode } from './node.ts';

/** A snapshot operation failed; `message` is QEMU's Error text, `errno` its return value. */
export class SnapshotError extends ErrnoError {
  constructor(errno: number, message: string) {
    super(errno, message);
    this.name = 'SnapshotError';
  }
}

/** The node whose driver implements snapshots: the node itself, or what a filter passes to. */
function snapshotNode(node: BlockNode): BlockNode {
  let n = node;
  while (n instanceof BaseNode && n.isFilter && n.primaryChild()) n = n.primaryChild()!;
  return n;
}

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

/**
 * bdrv_snapshot_load_tmp: make a read-only node show a snapshot's contents until it is
 * closed. Either or both of id and name select the snapshot.
 */
export function snapshotLoadTmp(node: BlockNode, id: string | undefined, name: string | undefined): void {
  if (id === undefined && name === undefined) throw new SnapshotError(Errno.EINVAL, 'snapshot_id and name are both NULL');
  if (!node.readOnly) throw new SnapshotError(Errno.EINVAL, 'Device is not readonly');
  const target = snapshotNode(node);
  if (!(target instanceof Qcow2Node)) {
    throw new SnapshotError(
      Errno.ENOTSUP,
      `Block format '${target.driver}' used by device '' does not support temporarily loading internal snapshots`,
    );
  }
  try {
    target.image.loadSnapshotTemporarily(id, name);
  } catch (err) {
    const errno = errnoOf(err);
    throw new SnapshotError(errno, err instanceof Error && err.message ? err.message : strerror(errno));
  }
}

/** bdrv_snapshot_load_tmp_by_id_or_name: the argument as an id first, then as a name. */
export function snapshotLoadTmpByIdOrName(node: BlockNode, idOrName: string): void {
  try {
    snapshotLoadTmp(node, idOrName, undefined);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno !== Errno.ENOENT && errno !== Errno.EINVAL) throw err;
    snapshotLoadTmp(node, undefined, idOrName);
  }
}

/**
 * bdrv_snapshot_goto: revert the node to a snapshot (by id or name). The format driver
 * reports its own errors through `report` (qcow2 error_report_err()s a bad snapshot table);
 * the thrown SnapshotError then carries QEMU's "Failed to load snapshot: <strerror>".
 */
export function snapshotGoto(node: BlockNode, idOrName: string, report: (message: string) => void): void {
  const target = snapshotNode(node);
  if (!(target instanceof Qcow2Node)) throw new SnapshotError(Errno.ENOTSUP, 'Block driver does not support snapshots');
  try {
    target.image.applySnapshot(idOrName);
  } catch (err) {
    const errno = errnoOf(err);
    if (err instanceof Error && err.message && err.message !== strerror(errno)) report(err.message);
    throw new SnapshotError(errno, `Failed to load snapshot: ${strerror(errno)}`);
  }
}
