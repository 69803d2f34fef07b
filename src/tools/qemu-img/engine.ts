/**
 * The format operations qemu-img needs beyond guest I/O (check, snapshots, amend, measure,
 * backing changes, format-specific info), looked up on the node's driver. Nodes whose driver
 * has no such operation give ENOTSUP, as QEMU's bdrv_* wrappers do.
 */
import type { BlockNode } from '../../block/types.ts';
import { Errno, ErrnoError } from '../../errno.ts';
import type { JsonObject } from '../../qmp/json.ts';
import { Qcow2Image } from '../../qcow2/image.ts';
import type { Qcow2AmendOptions } from '../../qcow2/amend.ts';
import type { Qcow2CheckResult } from '../../qcow2/index.ts';
import type { SnapshotInfo } from './format.ts';

/** BdrvCheckResult: the engine's counts without its messages (they are printed as they come). */
export type CheckResult = Omit<Qcow2CheckResult, 'messages' | 'ret'>;

export type CheckFix = { leaks: boolean; errors: boolean };

/** The qcow2 engine image behind a node, when the node is a qcow2 format node. */
export function qcow2Of(node: BlockNode): Qcow2Image | undefined {
  if (node.driver !== 'qcow2') return undefined;
  const holder = node as unknown as { image?: unknown; qcow2?: unknown };
  const img = holder.image ?? holder.qcow2;
  return img instanceof Qcow2Image ? img : undefined;
}

/**
 * bdrv_check: ENOTSUP for formats without checks. `report` receives the lines the check
 * prints to stderr (error_report ones with the program prefix). A failed check throws
 * ErrnoError with QEMU's errno.
 */
export function checkImage(node: BlockNode, fix: CheckFix, report: (line: string, errorReport: boolean) => void): CheckResult {
  const img = qcow2Of(node);
  if (!img) throw new ErrnoError(Errno.ENOTSUP);
  // Messages are printed as the check finds them, as QEMU does (a damaged image can have many).
  const r = img.check(fix.errors ? 'all' : fix.leaks ? 'leaks' : 'none', (m) => report(m.text, m.errorReport === true));
  if (r.ret < 0) throw new ErrnoError(-r.ret);
  const { messages: _messages, ret: _ret, ...counts } = r;
  return counts;
}

/** bdrv_amend_options with the QemuOpts values by name; the engine words its errors. */
export function amendImage(
  node: BlockNode,
  changes: Map<string, string | boolean | bigint>,
  onProgress?: (done: number, total: number) => void,
  onReport?: (message: string) => void,
): void {
  const img = qcow2Of(node);
  if (!img) throw new ErrnoError(Errno.ENOTSUP);
  const o: Qcow2AmendOptions = {};
  if (onProgress) o.onProgress = onProgress;
  if (onReport) o.onReport = onReport;
  for (const [name, value] of changes) {
    switch (name) {
      case 'compat':
        o.compat = String(value);
        break;
      case 'size':
        o.size = Number(value);
        break;
      case 'backing_file':
        o.backingFile = String(value);
        break;
      case 'backing_fmt':
        o.backingFormat = String(value);
        break;
      case 'lazy_refcounts':
        o.lazyRefcounts = value === true;
        break;
      case 'refcount_bits':
        o.refcountBits = Number(value);
        break;
      case 'data_file':
        o.dataFile = String(value);
        break;
      case 'data_file_raw':
        o.dataFileRaw = value === true;
        break;
      default:
        // LUKS keyslot management: images here are never encrypted.
        throw new ErrnoError(Errno.ENOTSUP, 'Amending encryption options is not supported for this image');
    }
  }
  img.amend(o);
}

export function snapshotsOf(node: BlockNode): SnapshotInfo[] {
  const img = qcow2Of(node);
  if (!img) return [];
  return img.snapshots.map((sn) => ({
    id: sn.id,
    name: sn.name,
    vmStateSize: sn.vmStateSize,
    dateSec: sn.dateSec,
    dateNsec: sn.dateNsec,
    vmClockNsec: sn.vmClockNsec,
    icount: sn.icount,
  }));
}

/** ImageInfoSpecific for qcow2 (members in QAPI order). */
export function formatSpecific(node: BlockNode): { type: string; data: JsonObject } | undefined {
  const img = qcow2Of(node);
  if (!img) return undefined;
  const h = img.header;
  const data: JsonObject = new Map();
  if (h.version === 2) {
    data.set('compat', '0.10');
    data.set('refcount-bits', BigInt(h.refcountBits));
  } else {
    data.set('compat', '1.1');
    data.set('lazy-refcounts', h.lazyRefcounts);
    data.set('corrupt', h.corrupt);
    data.set('refcount-bits', BigInt(h.refcountBits));
    if (h.externalDataFile && h.dataFile !== undefined) data.set('data-file', h.dataFile);
    if (h.externalDataFile) data.set('data-file-raw', h.dataFileRaw);
    data.set('extended-l2', h.extendedL2);
  }
  // Legacy AES has nothing to report but its format (qcrypto_block_get_info).
  if (h.cryptMethod === 1) data.set('encrypt', new Map([['format', 'aes']]));
  data.set('compression-type', h.compressionType);
  return { type: 'qcow2', data };
}

/** bdrv_change_backing_file (qcow2_change_backing_file): rewrite the header's backing names. */
export function changeBackingFile(node: BlockNode, file: string | undefined, fmt: string | undefined): void {
  const img = qcow2Of(node);
  if (!img) throw new ErrnoError(Errno.ENOTSUP);
  // bdrv_co_change_backing_file(require = true), as qemu-img rebase calls it in QEMU 7.2:
  // a backing file name without its format is refused.
  if (file !== undefined && fmt === undefined) throw new ErrnoError(Errno.EINVAL);
  img.changeBackingFile(file, fmt);
}

/** bdrv_make_empty (qcow2_make_empty): drop every allocation of the top image. */
export function makeEmpty(node: BlockNode): void {
  const img = qcow2Of(node);
  if (!img) throw new ErrnoError(Errno.ENOTSUP);
  img.makeEmpty();
}
