/**
 * qemu-img compare. Exit codes: 0 identical, 1 different, 2 open/usage errors, 3 block status
 * failure, 4 read errors.
 */
import { ErrnoError, Errno, strerror } from '../../errno.ts';
import type { BlockBackend } from '../../block/backend.ts';
import { BDRV_DEFAULT_CACHE, imgOpen, cacheOption, statusAbove, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE, type ImgOpenRequest } from './common.ts';
import type { Img } from './img.ts';
import { compareSectors, findNonzeroSector } from '../../block/zero.ts';
import { alignedBytes } from '../../storage/aligned.ts';

const IO_BUF_SIZE = 2 * 1024 * 1024;

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

export function imgCompare(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let fmt2: string | undefined;
  let cache = BDRV_DEFAULT_CACHE;
  let strict = false;

  const g = img.getopt(argv, ':hf:F:T:pqsU', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'F':
        fmt2 = r.optarg!;
        break;
      case 'T':
        cache = r.optarg!;
        break;
      case 'p':
        break;
      case 's':
        strict = true;
        break;
    }
  }
  const rest = g.operands();
  if (rest.length !== 2) img.errorExit('Expecting two image file names');
  const [filename1, filename2] = rest as [string, string];

  const cs = cacheOption(img, cache, 'source ');
  if (!cs) return 2;
  const open = (filename: string, fmt: string | undefined) => {
    const req: ImgOpenRequest = { imageOpts: args.imageOpts, filename, readOnly: true, writethrough: cs.writethrough, cache: cs, forceShare: args.forceShare };
    if (fmt !== undefined) req.fmt = fmt;
    return imgOpen(img, req);
  };
  const blk1 = open(filename1, args.fmt);
  if (!blk1) return 2;
  const blk2 = open(filename2, fmt2);
  if (!blk2) {
    blk1.close();
    return 2;
  }
  try {
    return compareImages(img, blk1, blk2, filename1, filename2, strict);
  } finally {
    blk2.close();
    blk1.close();
  }
}

function compareImages(img: Img, blk1: BlockBackend, blk2: BlockBackend, filename1: string, filename2: string, strict: boolean): number {
  const buf1 = alignedBytes(IO_BUF_SIZE);
  const buf2 = alignedBytes(IO_BUF_SIZE);
  const size1 = blk1.length();
  const size2 = blk2.length();
  const totalSize = Math.min(size1, size2);
  const progressBase = Math.max(size1, size2);

  if (strict && size1 !== size2) {
    img.qprint('Strict mode: Image size mismatch!\n');
    return 1;
  }

  const read = (blk: BlockBackend, filename: string, offset: number, buf: Uint8Array): boolean => {
    try {
      blk.read(offset, buf);
      return true;
    } catch (err) {
      img.error(`Error while reading offset ${offset} of ${filename}: ${strerror(errnoOf(err))}`);
      return false;
    }
  };
  /** check_empty_sectors: 0 zero, 1 mismatch, 4 read error. */
  const checkEmpty = (blk: BlockBackend, offset: number, bytes: number, filename: string): number => {
    const b = buf1.subarray(0, bytes);
    if (!read(blk, filename, offset, b)) return 4;
    const idx = findNonzeroSector(b, bytes);
    if (idx >= 0) {
      img.qprint(`Content mismatch at offset ${offset + idx}!\n`);
      return 1;
    }
    return 0;
  };
  const status = (blk: BlockBackend, filename: string, offset: number, bytes: number) => {
    try {
      return statusAbove(blk.root, offset, bytes);
    } catch {
      img.error(`Sector allocation test failed for ${filename}`);
      return null;
    }
  };

  let offset = 0;
  while (offset < totalSize) {
    const s1 = status(blk1, filename1, offset, size1 - offset);
    if (!s1) return 3;
    const s2 = status(blk2, filename2, offset, size2 - offset);
    if (!s2) return 3;
    let chunk = Math.min(s1.length, s2.length);
    if (strict) {
      const same = s1.allocated === s2.allocated && s1.data === s2.data && s1.zero === s2.zero && (s1.offset !== undefined) === (s2.offset !== undefined);
      if (!same) {
        img.qprint(`Strict mode: Offset ${offset} block status mismatch!\n`);
        return 1;
      }
    }
    if (s1.zero && s2.zero) {
      // nothing to compare
    } else if (s1.allocated === s2.allocated) {
      if (s1.allocated) {
        chunk = Math.min(chunk, IO_BUF_SIZE);
        if (!read(blk1, filename1, offset, buf1.subarray(0, chunk))) return 4;
        if (!read(blk2, filename2, offset, buf2.subarray(0, chunk))) return 4;
        const [differs, pnum] = compareSectors(buf1, buf2, 0, chunk);
        if (differs || pnum !== chunk) {
          img.qprint(`Content mismatch at offset ${offset + (differs ? 0 : pnum)}!\n`);
          return 1;
        }
      }
    } else {
      chunk = Math.min(chunk, IO_BUF_SIZE);
      const r = s1.allocated ? checkEmpty(blk1, offset, chunk, filename1) : checkEmpty(blk2, offset, chunk, filename2);
      if (r) return r;
    }
    offset += chunk;
  }

  if (size1 !== size2) {
    img.qprint('Warning: Image size mismatch!\n');
    const [over, overName] = size1 > size2 ? [blk1, filename1] : [blk2, filename2];
    while (offset < progressBase) {
      const s = status(over, overName, offset, progressBase - offset);
      if (!s) return 3;
      let chunk = s.length;
      if (s.allocated && !s.zero) {
        chunk = Math.min(chunk, IO_BUF_SIZE);
        const r = checkEmpty(over, offset, chunk, overName);
        if (r) return r;
      }
      offset += chunk;
    }
  }

  img.qprint('Images are identical.\n');
  return 0;
}
