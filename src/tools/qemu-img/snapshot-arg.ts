/**
 * The `-l SNAPSHOT` argument of qemu-img convert and measure: either `snapshot.id=...,
 * snapshot.name=...` (internal_snapshot_opts) or a plain id-or-name, and loading it
 * temporarily into the opened source.
 */
import type { BlockBackend } from '../../block/backend.ts';
import { OptionsError } from '../../block/errors.ts';
import { parseOptsString } from '../../block/options.ts';
import { snapshotLoadTmp, snapshotLoadTmpByIdOrName } from '../../block/snapshot.ts';
import { errorMessage, type Img } from './img.ts';

export type SnapshotArg = { kind: 'opts'; id?: string; name?: string } | { kind: 'name'; idOrName: string };

const SNAPSHOT_OPT_BASE = 'snapshot.';
const SNAPSHOT_KEYS = ['snapshot.id', 'snapshot.name'];

/** The -l argument; null after QEMU's messages for a bad `snapshot.` option list. */
export function parseSnapshotArg(img: Img, optarg: string): SnapshotArg | null {
  if (!optarg.startsWith(SNAPSHOT_OPT_BASE)) return { kind: 'name', idOrName: optarg };
  try {
    const opts = parseOptsString(optarg, {
      mergeLists: false,
      onWarning: (warning, hint) => {
        img.warn(warning);
        img.ctx.out.stderr(hint);
      },
    });
    for (const key of opts.keys()) {
      if (!SNAPSHOT_KEYS.includes(key)) throw new OptionsError(`Invalid parameter '${key}'`);
    }
    const arg: SnapshotArg = { kind: 'opts' };
    const id = opts.get('snapshot.id');
    const name = opts.get('snapshot.name');
    if (typeof id === 'string') arg.id = id;
    if (typeof name === 'string') arg.name = name;
    return arg;
  } catch (err) {
    img.error(errorMessage(err));
    img.error(`Failed in parsing snapshot param '${optarg}'`);
    return null;
  }
}

/** Load the snapshot into the (read-only) source; false after "Failed to load snapshot: ...". */
export function loadSnapshotArg(img: Img, blk: BlockBackend, arg: SnapshotArg): boolean {
  try {
    if (arg.kind === 'opts') snapshotLoadTmp(blk.root, arg.id, arg.name);
    else snapshotLoadTmpByIdOrName(blk.root, arg.idOrName);
    return true;
  } catch (err) {
    img.error(`Failed to load snapshot: ${errorMessage(err)}`);
    return false;
  }
}
