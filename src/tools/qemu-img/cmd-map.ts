/**
 * qemu-img map: block status over the backing chain, merged into runs, human or json.
 */
import { ErrnoError, Errno, strerror } from '../../errno.ts';
import type { BlockNode } from '../../block/types.ts';
import { OPTION_OUTPUT, backingOf, imgOpen, nodeStatus, parseOutput, ImageArgs, LONG_HELP, LONG_FORMAT, LONG_OUTPUT, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE } from './common.ts';
import { MAP_HUMAN_HEADER, formatMapEntry, mapEntryMergeable, type MapEntry } from './format.ts';
import type { Img } from './img.ts';
import { imgCvtnum } from '../common/numbers.ts';

const GiB = 1024 * 1024 * 1024;

/** get_block_status: walk down the chain until a layer describes the range. */
function getBlockStatus(top: BlockNode, offset: number, bytes: number): MapEntry {
  let node: BlockNode = top;
  let depth = 0;
  let length = bytes;
  for (;;) {
    const s = nodeStatus(node, offset, length);
    length = s.length;
    if (s.data || s.zero) {
      const entry: MapEntry = { start: offset, length, data: s.data, zero: s.zero, depth, present: s.allocated };
      if (s.offset !== undefined) {
        entry.offset = s.offset;
        if (s.file) entry.filename = s.file.filename;
      }
      return entry;
    }
    const backing = backingOf(node);
    if (!backing) return { start: offset, length, data: false, zero: false, depth, present: false };
    node = backing;
    depth++;
  }
}

export function imgMap(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let output: string | undefined;
  let startOffset = 0n;
  let maxLength = -1n;

  const g = img.getopt(argv, ':f:s:l:hU', [
    LONG_HELP,
    LONG_FORMAT,
    LONG_OUTPUT,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
    { name: 'start-offset', hasArg: true, val: 's' },
    { name: 'max-length', hasArg: true, val: 'l' },
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case OPTION_OUTPUT:
        output = r.optarg!;
        break;
      case 's':
      case 'l': {
        const c = imgCvtnum(r.opt === 's' ? 'start offset' : 'max length', r.optarg!);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        if (c.warning) img.warn(c.warning);
        if (r.opt === 's') startOffset = c.value;
        else maxLength = c.value;
        break;
      }
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  const filename = rest[0]!;
  const mode = parseOutput(img, output);
  if (mode === null) return 1;

  const req = args.request(filename, { readOnly: true, writethrough: false });
  const blk = imgOpen(img, req);
  if (!blk) return 1;

  try {
    if (mode === 'human') img.print(MAP_HUMAN_HEADER);
    let length = blk.length();
    if (maxLength !== -1n) length = Math.min(length, Number(startOffset + maxLength));
    let curr: MapEntry = { start: Number(startOffset), length: 0, data: false, zero: false, depth: 0, present: false };
    let next: MapEntry;
    while (curr.start + curr.length < length) {
      const offset = curr.start + curr.length;
      const n = Math.min(GiB, length - offset);
      try {
        next = getBlockStatus(blk.root, offset, n);
      } catch (err) {
        const errno = err instanceof ErrnoError ? err.errno : Errno.EIO;
        img.error(`Could not read file metadata: ${strerror(errno)}`);
        return 1;
      }
      if (mapEntryMergeable(curr, next)) {
        curr.length += next.length;
        continue;
      }
      if (curr.length > 0) {
        const r = formatMapEntry(mode, curr, next, Number(startOffset));
        if ('error' in r) {
          img.error(r.error);
          return 1;
        }
        img.print(r.text);
      }
      curr = next;
    }
    const r = formatMapEntry(mode, curr, null, Number(startOffset));
    if ('error' in r) {
      img.error(r.error);
      return 1;
    }
    img.print(r.text);
    return 0;
  } finally {
    blk.close();
  }
}
