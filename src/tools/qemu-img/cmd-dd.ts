/**
 * qemu-img dd if=IN of=OUT [bs=] [count=] [skip=]: creates OUT (format -O) with the size left
 * after skipping, then copies block by block.
 */
import { CreateOptions, NON_CREATING_DRIVERS, UNIMPLEMENTED_CREATING_FORMATS, appendDescs, createOptsFor, protocolCreateOpts } from '../../block/create-opts.ts';
import { bdrvCreate } from '../../block/create.ts';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { imgOpen, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE } from './common.ts';
import type { Img } from './img.ts';
import { INT64_MAX, INT_MAX, imgCvtnum, cvtnumFull } from '../common/numbers.ts';
import { alignedBytes } from '../../storage/aligned.ts';

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

export function imgDd(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let outFmt = 'raw';

  const g = img.getopt(argv, ':hf:O:U', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'O':
        outFmt = r.optarg!;
        break;
    }
  }

  let bsz = 512n;
  let count = 0n;
  let skip = 0n;
  let inFile: string | undefined;
  let outFile: string | undefined;
  let hasCount = false;
  let hasSkip = false;
  for (const arg of g.operands()) {
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg : arg.slice(0, eq);
    const value = eq < 0 ? '' : arg.slice(eq + 1);
    if (eq < 0 || !['bs', 'count', 'if', 'of', 'skip'].includes(key)) {
      img.error(`unrecognized operand ${key}`);
      return 1;
    }
    if (key === 'if') inFile = value;
    else if (key === 'of') outFile = value;
    else {
      const c = key === 'bs' ? cvtnumFull('bs', value, 1n, INT_MAX) : imgCvtnum(key, value);
      if (!c.ok) {
        for (const m of c.messages) img.error(m);
        return 1;
      }
      if (c.warning) img.warn(c.warning);
      if (key === 'bs') bsz = c.value;
      else if (key === 'count') {
        count = c.value;
        hasCount = true;
      } else {
        skip = c.value;
        hasSkip = true;
      }
    }
  }
  if (inFile === undefined || outFile === undefined) {
    img.error('Must specify both input and output files');
    return 1;
  }

  const req = args.request(inFile, { readOnly: true, writethrough: false });
  const blk1 = imgOpen(img, req);
  if (!blk1) return 1;
  try {
    const descs = createOptsFor(outFmt);
    if (!descs) {
      if (NON_CREATING_DRIVERS.has(outFmt) || UNIMPLEMENTED_CREATING_FORMATS.has(outFmt)) {
        img.error(`Format driver '${outFmt}' does not support image creation`);
      } else {
        img.error('Unknown file format');
      }
      return 1;
    }
    const opts = new CreateOptions(appendDescs(descs, protocolCreateOpts()));
    let size = BigInt(blk1.length());
    if (hasCount && count <= INT64_MAX / bsz && count * bsz < size) size = count * bsz;
    const skipBeyond = hasSkip && (skip > INT64_MAX / bsz || size < bsz * skip);
    opts.setNumber('size', skipBeyond ? 0n : size - bsz * skip);
    try {
      bdrvCreate(img.createEnv(), outFmt, outFile, opts);
    } catch (err) {
      img.reportErr(err, `${outFile}: error while creating output image: `);
      return 1;
    }
    const blk2 = imgOpen(img, { imageOpts: false, filename: outFile, fmt: outFmt, readOnly: false, writethrough: false, forceShare: false });
    if (!blk2) return 1;
    try {
      let inPos: bigint;
      if (skipBeyond) {
        img.error(`${inFile}: cannot skip to specified offset`);
        inPos = size;
      } else {
        inPos = skip * bsz;
      }
      const buf = alignedBytes(Number(bsz));
      let outPos = 0;
      while (inPos < size) {
        const n = Number(inPos + bsz > size ? size - inPos : bsz);
        try {
          blk1.read(Number(inPos), buf.subarray(0, n));
        } catch (err) {
          img.error(`error while reading from input image file: ${strerror(errnoOf(err))}`);
          return 1;
        }
        inPos += BigInt(n);
        try {
          blk2.write(outPos, buf.subarray(0, n));
        } catch (err) {
          img.error(`error while writing to output image file: ${strerror(errnoOf(err))}`);
          return 1;
        }
        outPos += n;
      }
      return 0;
    } finally {
      blk2.close();
    }
  } finally {
    blk1.close();
  }
}
