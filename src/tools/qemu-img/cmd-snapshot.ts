/**
 * qemu-img snapshot -l | -c NAME | -a NAME | -d NAME.
 */
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import type { BlockNode } from '../../block/types.ts';
import { imgOpen, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE } from './common.ts';
import { qcow2Of, snapshotsOf } from './engine.ts';
import { formatSnapshotList } from './format.ts';
import { errorMessage, type Img } from './img.ts';
import { snapshotGoto } from '../../block/snapshot.ts';

type Action = 'list' | 'create' | 'apply' | 'delete';

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

/** bdrv_snapshot_find: the first snapshot with that name (ids are not looked at). */
function findSnapshot(node: BlockNode, name: string): { id: string; name: string } | undefined {
  return snapshotsOf(node).find((s) => s.name === name);
}

export function imgSnapshot(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let action: Action | undefined;
  let name = '';

  const g = img.getopt(argv, ':la:c:d:hqU', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
  ]);
  const setAction = (a: Action, arg?: string) => {
    if (action) img.errorExit("Cannot mix '-l', '-a', '-c', '-d'");
    action = a;
    if (arg !== undefined) name = arg;
  };
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'l':
        setAction('list');
        break;
      case 'a':
        setAction('apply', r.optarg!);
        break;
      case 'c':
        setAction('create', r.optarg!);
        break;
      case 'd':
        setAction('delete', r.optarg!);
        break;
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  const filename = rest[0]!;

  const blk = imgOpen(img, { imageOpts: args.imageOpts, filename, readOnly: action === 'list', writethrough: false, forceShare: args.forceShare });
  if (!blk) return 1;
  const node = blk.root;
  try {
    switch (action) {
      case 'list': {
        const list = snapshotsOf(node);
        if (list.length > 0 && !qcow2Of(node)?.hasExternalDataFile) img.print(formatSnapshotList(list));
        return 0;
      }
      case 'create': {
        const q = qcow2Of(node);
        try {
          if (!q) throw new ErrnoError(Errno.ENOTSUP);
          const nowUs = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000));
          q.createSnapshot({
            name,
            vmStateSize: 0,
            dateSec: Number(nowUs / 1_000_000n),
            dateNsec: Number(nowUs % 1_000_000n) * 1000,
            vmClockNsec: 0n,
            icount: 0n,
          });
        } catch (err) {
          const e = errnoOf(err);
          img.error(`Could not create snapshot '${name}': ${-e} (${strerror(e)})`);
          return 1;
        }
        return 0;
      }
      case 'apply': {
        try {
          snapshotGoto(node, name, (m) => img.error(m));
        } catch (err) {
          img.error(`Could not apply snapshot '${name}': ${errorMessage(err)}`);
          return 1;
        }
        return 0;
      }
      case 'delete': {
        const sn = findSnapshot(node, name);
        if (!sn) {
          img.error(`Could not delete snapshot '${name}': snapshot not found`);
          return 1;
        }
        try {
          qcow2Of(node)!.deleteSnapshot(sn.id, sn.name);
        } catch (err) {
          const e = errnoOf(err);
          const msg = err instanceof ErrnoError && err.message !== strerror(e) ? err.message : `Failed to delete snapshot: ${strerror(e)}`;
          img.error(`Could not delete snapshot '${name}': ${msg}`);
          return 1;
        }
        return 0;
      }
      default:
        return 0;
    }
  } finally {
    blk.close();
  }
}
