/**
 * qemu-img rebase: safe mode copies every cluster where old and new backing differ into the
 * image before switching the backing file name; -u only rewrites the name.
 */
import type { BlockBackend } from '../../block/backend.ts';
import { findDriver } from '../../block/drivers/registry.ts';
import { fullBackingFilename } from '../../block/create.ts';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BDRV_DEFAULT_CACHE, ImgOpenFailure, backingOf, imgOpen, openImgBackend, type ImgOpenRequest, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE, cacheOption } from './common.ts';
import { QemuError } from '../../block/create-opts.ts';
import { changeBackingFile } from './engine.ts';
import { compareSectors } from '../../block/zero.ts';
import { errorMessage, type Img } from './img.ts';
import { alignedBytes } from '../../storage/aligned.ts';

const IO_BUF_SIZE = 2 * 1024 * 1024;

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

export function imgRebase(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let cache = BDRV_DEFAULT_CACHE;
  let srcCache = BDRV_DEFAULT_CACHE;
  let outBaseimg: string | undefined;
  let outBasefmt: string | undefined;
  let unsafe = false;

  const g = img.getopt(argv, ':hf:F:b:upt:T:qU', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'F':
        outBasefmt = r.optarg!;
        break;
      case 'b':
        outBaseimg = r.optarg!;
        break;
      case 'u':
        unsafe = true;
        break;
      case 'p':
        break;
      case 't':
        cache = r.optarg!;
        break;
      case 'T':
        srcCache = r.optarg!;
        break;
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  if (!unsafe && outBaseimg === undefined) img.errorExit('Must specify backing file (-b) or use unsafe mode (-u)');
  const filename = rest[0]!;

  const cs = cacheOption(img, cache);
  if (!cs) return 1;
  const srcCs = cacheOption(img, srcCache, 'source ');
  if (!srcCs) return 1;

  const req = args.request(filename, { readOnly: false, writethrough: cs.writethrough, cache: cs, noBacking: unsafe });
  const blk = imgOpen(img, req);
  if (!blk) return 1;
  let newBacking: BlockBackend | null = null;
  try {
    if (outBasefmt !== undefined && !findDriver(outBasefmt)) {
      img.error(`Invalid format name: '${outBasefmt}'`);
      return 1;
    }
    const bs = blk.root;
    if (!unsafe) {
      const oldBacking = backingOf(bs);
      if (outBaseimg !== '' && outBaseimg !== undefined) {
        let realPath: string;
        try {
          realPath = fullBackingFilename(bs.filename, outBaseimg);
        } catch (err) {
          img.error(`Could not resolve backing filename: ${errorMessage(err)}`);
          return 1;
        }
        const breq: ImgOpenRequest = { imageOpts: false, filename: realPath, readOnly: true, writethrough: false, cache: srcCs, forceShare: args.forceShare };
        if (outBasefmt !== undefined) breq.fmt = outBasefmt;
        try {
          newBacking = openImgBackend(img, breq);
        } catch (err) {
          if (!(err instanceof ImgOpenFailure)) throw err;
          img.reportErr(new QemuError(err.message, err.hint), `Could not open new backing file '${outBaseimg}': `);
          return 1;
        }
      }
      const size = blk.length();
      const oldSize = oldBacking ? oldBacking.length() : 0;
      const newSize = newBacking ? newBacking.length() : 0;
      const bufOld = alignedBytes(IO_BUF_SIZE);
      const bufNew = alignedBytes(IO_BUF_SIZE);
      for (let offset = 0; offset < size; ) {
        let n = Math.min(IO_BUF_SIZE, size - offset);
        const st = bs.blockStatus(offset, n);
        n = st.length;
        if (st.allocated) {
          offset += n;
          continue;
        }
        let oldIsZero = false;
        if (offset >= oldSize || !oldBacking) {
          bufOld.fill(0, 0, n);
          oldIsZero = true;
        } else {
          if (offset + n > oldSize) n = oldSize - offset;
          try {
            oldBacking.read(offset, bufOld.subarray(0, n));
          } catch {
            img.error('error while reading from old backing file');
            return 1;
          }
        }
        if (offset >= newSize || !newBacking) {
          bufNew.fill(0, 0, n);
        } else {
          if (offset + n > newSize) n = newSize - offset;
          try {
            newBacking.read(offset, bufNew.subarray(0, n));
          } catch {
            img.error('error while reading from new backing file');
            return 1;
          }
        }
        let written = 0;
        while (written < n) {
          const [differs, pnum] = compareSectors(bufOld, bufNew, written, n - written);
          if (differs) {
            try {
              if (oldIsZero) blk.writeZeroes(offset + written, pnum);
              else blk.write(offset + written, bufOld.subarray(written, written + pnum));
            } catch (err) {
              img.error(`Error while writing to COW image: ${strerror(errnoOf(err))}`);
              return 1;
            }
          }
          written += pnum;
        }
        offset += n;
      }
    }
    try {
      if (outBaseimg) changeBackingFile(bs, outBaseimg, outBasefmt);
      else changeBackingFile(bs, undefined, undefined);
    } catch (err) {
      const e = errnoOf(err);
      if (e === Errno.ENOSPC) img.error(`Could not change the backing file to '${outBaseimg}': No space left in the file header`);
      else if (e === Errno.EINVAL && outBaseimg && outBasefmt === undefined) {
        img.error(`Could not change the backing file to '${outBaseimg}': backing format must be specified`);
      } else img.error(`Could not change the backing file to '${outBaseimg ?? ''}': ${strerror(e)}`);
      return 1;
    }
    return 0;
  } finally {
    newBacking?.close();
    blk.close();
  }
}
