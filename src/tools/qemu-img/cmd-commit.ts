/**
 * qemu-img commit: copy what the top image allocates into its backing file (or the -b base),
 * then empty the top image unless -d / -b.
 */
import type { BlockNode } from '../../block/types.ts';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BDRV_DEFAULT_CACHE, backingOf, imgOpen, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS, cacheOption } from './common.ts';
import { makeEmpty } from './engine.ts';
import { errorMessage, type Img } from './img.ts';
import { imgCvtnum } from '../common/numbers.ts';
import { fullBackingFilename } from '../../block/create.ts';
import { alignedBytes } from '../../storage/aligned.ts';

const CHUNK = 2 * 1024 * 1024;

/** bdrv_find_backing_image: a chain member whose (combined) backing name matches. */
function findBackingImage(top: BlockNode, name: string): BlockNode | undefined {
  for (let child = backingOf(top), parent = top; child; parent = child, child = backingOf(child)) {
    const candidates = [child.filename];
    try {
      candidates.push(fullBackingFilename(parent.filename, name));
    } catch {
      // relative names of json: parents cannot be combined
    }
    if (child.filename === name || candidates.slice(1).includes(child.filename)) return child;
  }
  return undefined;
}

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

export function imgCommit(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let cache = BDRV_DEFAULT_CACHE;
  let base: string | undefined;
  let drop = false;

  const g = img.getopt(argv, ':f:ht:b:dpqr:', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 't':
        cache = r.optarg!;
        break;
      case 'b':
        base = r.optarg!;
        drop = true;
        break;
      case 'd':
        drop = true;
        break;
      case 'p':
        break;
      case 'r': {
        const c = imgCvtnum('rate limit', r.optarg!);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        break;
      }
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  const filename = rest[0]!;
  const cs = cacheOption(img, cache);
  if (!cs) return 1;
  const req = args.request(filename, { readOnly: false, writethrough: cs.writethrough, cache: cs, unmap: true });
  const blk = imgOpen(img, req);
  if (!blk) return 1;
  try {
    const top = blk.root;
    let baseNode: BlockNode | undefined;
    if (base !== undefined) {
      baseNode = findBackingImage(top, base);
      if (!baseNode) {
        img.error(`Did not find '${base}' in the backing chain of '${filename}'`);
        return 1;
      }
    } else {
      baseNode = backingOf(top);
      if (!baseNode) {
        img.error('Image does not have a backing file');
        return 1;
      }
    }
    try {
      commitRange(top, baseNode);
    } catch (err) {
      img.error(`Block job failed: ${strerror(errnoOf(err))}`);
      return 1;
    }
    if (!drop) {
      try {
        makeEmpty(top);
      } catch (err) {
        img.error(`Could not empty ${filename}: ${strerror(errnoOf(err))}`);
        return 1;
      }
    }
    img.qprint('Image committed.\n');
    return 0;
  } catch (err) {
    img.error(errorMessage(err));
    return 1;
  } finally {
    blk.close();
  }
}

/** bdrv_is_allocated_above(top, base): whether a layer above base describes the range. */
export function allocatedAbove(top: BlockNode, base: BlockNode | undefined, offset: number, bytes: number): { allocated: boolean; length: number } {
  let length = bytes;
  for (let node: BlockNode | undefined = top; node && node !== base; node = backingOf(node)) {
    if (offset >= node.length()) return { allocated: true, length };
    const st = node.blockStatus(offset, length);
    length = st.length;
    if (st.allocated) return { allocated: true, length };
  }
  return { allocated: false, length };
}

/** The commit job: everything allocated above `base` is written into it. */
function commitRange(top: BlockNode, base: BlockNode): void {
  reopenReadWrite(base);
  const len = top.length();
  if (base.length() < len) base.truncate(len, { exact: false, prealloc: 'off', shrinkAllowed: false });
  const buf = alignedBytes(CHUNK);
  let offset = 0;
  while (offset < len) {
    const r = allocatedAbove(top, base, offset, Math.min(CHUNK, len - offset));
    if (r.allocated) {
      top.read(offset, buf.subarray(0, r.length));
      base.write(offset, buf.subarray(0, r.length));
    }
    offset += r.length;
  }
  base.flush();
}

/** bdrv_reopen to read-write, where the block layer offers it. */
function reopenReadWrite(node: BlockNode): void {
  if (!node.readOnly) return;
  const r = node as unknown as { reopen?: (opts: { readOnly: boolean }) => void };
  if (typeof r.reopen !== 'function') throw new ErrnoError(Errno.EPERM);
  r.reopen({ readOnly: false });
}
