/**
 * qemu-img convert: option checks, target creation (no Formatting line), and the copy loop of
 * 7.2 done in order (block status of the sources, sparse detection in 4k runs, zero
 * handling, compressed clusters, copy offloading with silent fallback).
 */
import type { BlockBackend } from '../../block/backend.ts';
import { CreateOptions, NON_CREATING_DRIVERS, UNIMPLEMENTED_CREATING_FORMATS, appendDescs, createOptsFor, hasHelpOption, protocolCreateOpts } from '../../block/create-opts.ts';
import { bdrvCreate } from '../../block/create.ts';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { isZeroRange } from '../../block/zero.ts';
import { addOptionList, printBlockOptionHelp } from './cmd-create.ts';
import { BDRV_DEFAULT_CACHE, OPTION_BITMAPS, OPTION_SALVAGE, OPTION_SKIP_BROKEN, OPTION_TARGET_IMAGE_OPTS, OPTION_TARGET_IS_ZERO, backingOf, imgOpen, nodeStatus, statusAbove, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE, cacheOption, type ImgOpenRequest } from './common.ts';
import { qcow2Of } from './engine.ts';
import { type Img } from './img.ts';
import { loadSnapshotArg, parseSnapshotArg, type SnapshotArg } from './snapshot-arg.ts';
import { imgCvtnum, qemuStrtou64 } from '../common/numbers.ts';
import { alignedBytes } from '../../storage/aligned.ts';

const SECTOR = 512;
const IO_BUF_SIZE = 2 * 1024 * 1024;
const MAX_BUF_SECTORS = 32768;
const BDRV_REQUEST_MAX_SECTORS = Math.floor(2147483136 / SECTOR);
const MAX_COROUTINES = 16;

type ConvertStatus = 'data' | 'zero' | 'backing';

interface ConvertState {
  src: BlockBackend[];
  srcSectors: number[];
  totalSectors: number;
  target: BlockBackend;
  targetHasBacking: boolean;
  targetBackingSectors: number;
  hasZeroInit: boolean;
  compressed: boolean;
  copyRange: boolean;
  salvage: boolean;
  minSparse: number;
  alignment: number;
  clusterSectors: number;
  bufSectors: number;
  status: ConvertStatus;
  sectorNextStatus: number;
}

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

function selectPart(s: ConvertState, sectorNum: number): { cur: number; curOffset: number } {
  let cur = 0;
  let curOffset = 0;
  while (sectorNum - curOffset >= s.srcSectors[cur]!) {
    curOffset += s.srcSectors[cur]!;
    cur++;
  }
  return { cur, curOffset };
}

/** convert_iteration_sectors: the status at sectorNum and how many sectors share it. */
function iterationSectors(img: Img, s: ConvertState, sectorNum: number): number {
  const { cur, curOffset } = selectPart(s, sectorNum);
  let n = Math.min(s.totalSectors - sectorNum, BDRV_REQUEST_MAX_SECTORS);
  let postBackingZero = false;
  if (s.targetBackingSectors >= 0) {
    if (sectorNum >= s.targetBackingSectors) postBackingZero = true;
    else if (sectorNum + n > s.targetBackingSectors) n = s.targetBackingSectors - sectorNum;
  }
  if (s.sectorNextStatus <= sectorNum) {
    const offset = (sectorNum - curOffset) * SECTOR;
    const src = s.src[cur]!;
    const srcLen = src.length();
    let count = Math.min(n * SECTOR, Math.max(0, srcLen - offset));
    let zero = false;
    let data = false;
    if (count === 0) {
      // The source's sector-rounded tail past its byte length reads as zeroes.
      count = n * SECTOR;
      zero = true;
    } else {
      try {
        const st = s.targetHasBacking ? nodeStatus(src.root, offset, count) : statusAbove(src.root, offset, count);
        count = st.length;
        zero = st.zero;
        data = st.data;
        if (!st.zero && !st.data && !st.allocated && !s.targetHasBacking) data = true;
      } catch (err) {
        img.error(`error while reading block status at offset ${offset}: ${strerror(errnoOf(err))}`);
        throw new ConvertFailure(-errnoOf(err));
      }
    }
    n = Math.ceil(count / SECTOR);
    if (zero) s.status = postBackingZero ? 'backing' : 'zero';
    else if (data) s.status = 'data';
    else s.status = s.targetHasBacking ? 'backing' : 'data';
    s.sectorNextStatus = sectorNum + n;
  }
  n = Math.min(n, s.sectorNextStatus - sectorNum);
  if (s.status === 'data') n = Math.min(n, s.bufSectors);
  if (s.compressed) {
    if (n < s.clusterSectors) {
      n = Math.min(s.clusterSectors, s.totalSectors - sectorNum);
      s.status = 'data';
    } else {
      n -= n % s.clusterSectors;
    }
  }
  return n;
}

class ConvertFailure extends Error {
  readonly ret: number;
  constructor(ret: number) {
    super(`convert failed: ${ret}`);
    this.ret = ret;
  }
}

function bufferIsZero(buf: Uint8Array, start: number, end: number): boolean {
  return isZeroRange(buf, start, end);
}

/** is_allocated_sectors: [nonzero?, sectors with the same state]. */
function isAllocatedSectors(buf: Uint8Array, bufStart: number, n: number, sectorNum: number, alignment: number): [boolean, number] {
  if (n <= 0) return [false, 0];
  let isZero = bufferIsZero(buf, bufStart, bufStart + SECTOR);
  let i = 1;
  // A wholly zero range needs no sector walk.
  if (isZero && bufferIsZero(buf, bufStart, bufStart + n * SECTOR)) i = n;
  for (; i < n; i++) {
    const off = bufStart + i * SECTOR;
    if (isZero !== bufferIsZero(buf, off, off + SECTOR)) break;
  }
  const tail = (sectorNum + i) & (alignment - 1);
  if (tail) {
    if (isZero && i <= tail) isZero = false;
    if (!isZero) i = Math.min(i + alignment - tail, n);
    else i -= tail;
  }
  return [!isZero, i];
}

/** is_allocated_sectors_min */
function isAllocatedSectorsMin(buf: Uint8Array, n: number, min: number, sectorNum: number, alignment: number): [boolean, number] {
  if (n < min) min = n;
  let [ret, pnum] = isAllocatedSectors(buf, 0, n, sectorNum, alignment);
  if (!ret) return [false, pnum];
  let numUsed = pnum;
  let bufStart = pnum * SECTOR;
  let left = n - pnum;
  let sec = sectorNum + pnum;
  let numChecked = numUsed;
  while (left > 0) {
    [ret, pnum] = isAllocatedSectors(buf, bufStart, left, sec, alignment);
    bufStart += pnum * SECTOR;
    left -= pnum;
    sec += pnum;
    numChecked += pnum;
    if (ret) numUsed = numChecked;
    else if (pnum >= min) break;
  }
  return [true, numUsed];
}

function convertRead(s: ConvertState, sectorNum: number, nbSectors: number, buf: Uint8Array): void {
  let pos = 0;
  while (nbSectors > 0) {
    const { cur, curOffset } = selectPart(s, sectorNum);
    const src = s.src[cur]!;
    const offset = (sectorNum - curOffset) * SECTOR;
    const n = Math.min(nbSectors, s.srcSectors[cur]! - (sectorNum - curOffset));
    const want = n * SECTOR;
    const avail = Math.max(0, Math.min(want, src.length() - offset));
    const chunk = buf.subarray(pos, pos + want);
    if (avail > 0) src.read(offset, chunk.subarray(0, avail));
    chunk.fill(0, avail);
    sectorNum += n;
    nbSectors -= n;
    pos += want;
  }
}

function convertWrite(s: ConvertState, sectorNum: number, nbSectors: number, buf: Uint8Array, status: ConvertStatus): void {
  let pos = 0;
  while (nbSectors > 0) {
    let n = nbSectors;
    const view = buf.subarray(pos * SECTOR);
    let zero = false;
    if (status === 'backing') {
      // Unallocated in the source: leave it unallocated so the backing file shows through.
    } else if (status === 'data') {
      let write = false;
      if (!s.minSparse) write = true;
      else if (s.compressed) write = !bufferIsZero(view, 0, n * SECTOR);
      else {
        const [allocated, pnum] = isAllocatedSectorsMin(view, n, s.minSparse, sectorNum, s.alignment);
        n = pnum;
        write = allocated;
      }
      if (write) {
        const data = view.subarray(0, n * SECTOR);
        if (s.compressed) s.target.writeCompressed(sectorNum * SECTOR, data);
        else s.target.write(sectorNum * SECTOR, data);
      } else {
        zero = true;
      }
    } else {
      zero = true;
    }
    if (zero && !s.hasZeroInit) s.target.writeZeroes(sectorNum * SECTOR, n * SECTOR, { unmap: true });
    sectorNum += n;
    nbSectors -= n;
    pos += n;
  }
}

function convertCopyRange(s: ConvertState, sectorNum: number, nbSectors: number): void {
  while (nbSectors > 0) {
    const { cur, curOffset } = selectPart(s, sectorNum);
    const offset = (sectorNum - curOffset) * SECTOR;
    const n = Math.min(nbSectors, s.srcSectors[cur]! - (sectorNum - curOffset));
    s.src[cur]!.root.copyRangeTo(s.target.root, offset, sectorNum * SECTOR, n * SECTOR);
    sectorNum += n;
    nbSectors -= n;
  }
}

/** bdrv_has_zero_init of the new target. */
function hasZeroInit(target: BlockBackend): boolean {
  // qcow2: fresh images read as zeroes; preallocated ones defer to their data file, a new
  // regular file, which is zero too.
  if (qcow2Of(target.root)) return true;
  return target.root.driver === 'raw' || target.root.driver === 'file';
}

function doCopy(img: Img, s: ConvertState, targetIsNew: boolean, presetZero: boolean): number {
  s.hasZeroInit = presetZero;
  if (!s.hasZeroInit && targetIsNew && s.minSparse && !s.targetHasBacking) s.hasZeroInit = hasZeroInit(s.target);
  if (s.compressed) {
    if (s.clusterSectors <= 0 || s.clusterSectors > s.bufSectors) {
      img.error('invalid cluster size');
      return -Errno.EINVAL;
    }
    s.bufSectors = s.clusterSectors;
  }
  s.sectorNextStatus = 0;
  const buf = alignedBytes(s.bufSectors * SECTOR);
  let sectorNum = 0;
  try {
    while (sectorNum < s.totalSectors) {
      let n = iterationSectors(img, s, sectorNum);
      let status = s.status;
      if (!s.minSparse && status === 'zero') n = Math.min(n, s.bufSectors);
      const start = sectorNum;
      sectorNum += n;
      for (;;) {
        const copyRange = s.copyRange && s.status === 'data';
        if (status === 'data' && !copyRange) {
          try {
            convertRead(s, start, n, buf);
          } catch (err) {
            img.error(`error while reading at byte ${start * SECTOR}: ${strerror(errnoOf(err))}`);
            return -errnoOf(err);
          }
        } else if (!s.minSparse && status === 'zero') {
          status = 'data';
          buf.fill(0, 0, n * SECTOR);
        }
        if (copyRange) {
          try {
            convertCopyRange(s, start, n);
          } catch {
            // No copy offloading here: fall back to reading and writing, silently.
            s.copyRange = false;
            continue;
          }
        } else {
          try {
            convertWrite(s, start, n, buf, status);
          } catch (err) {
            img.error(`error while writing at byte ${start * SECTOR}: ${strerror(errnoOf(err))}`);
            return -errnoOf(err);
          }
        }
        break;
      }
    }
  } catch (err) {
    if (err instanceof ConvertFailure) return err.ret;
    throw err;
  }
  if (s.compressed) return alignCompressedEnd(s.target);
  return 0;
}

/**
 * The zero-length compressed write convert ends with: qcow2 rounds its file up to a whole
 * sector (and refuses, silently for the user, when the image has an external data file).
 */
function alignCompressedEnd(target: BlockBackend): number {
  const q = qcow2Of(target.root);
  if (!q) return 0;
  if (q.hasExternalDataFile) return -Errno.ENOTSUP;
  const file = target.root.children.get('file');
  if (!file) return 0;
  try {
    const len = Math.ceil(file.length() / SECTOR) * SECTOR;
    file.truncate(len, { exact: false, prealloc: 'off', shrinkAllowed: false });
    return 0;
  } catch (err) {
    return -errnoOf(err);
  }
}

export function imgConvert(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let outFmt: string | undefined;
  let cache = 'unsafe';
  let srcCache = BDRV_DEFAULT_CACHE;
  let outBaseimg: string | undefined;
  let outBasefmt: string | undefined;
  let options: string | undefined;
  let snapshot: SnapshotArg | undefined;
  let tgtImageOpts = false;
  let skipCreate = false;
  let compressed = false;
  let copyRange = false;
  let salvage = false;
  let targetIsZero = false;
  let bitmaps = false;
  let skipBroken = false;
  let minSparse = 8;
  let explicitMinSparse = false;

  const g = img.getopt(argv, ':hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
    { name: 'target-image-opts', hasArg: false, val: OPTION_TARGET_IMAGE_OPTS },
    { name: 'salvage', hasArg: false, val: OPTION_SALVAGE },
    { name: 'target-is-zero', hasArg: false, val: OPTION_TARGET_IS_ZERO },
    { name: 'bitmaps', hasArg: false, val: OPTION_BITMAPS },
    { name: 'skip-broken-bitmaps', hasArg: false, val: OPTION_SKIP_BROKEN },
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'O':
        outFmt = r.optarg!;
        break;
      case 'B':
        outBaseimg = r.optarg!;
        break;
      case 'F':
        outBasefmt = r.optarg!;
        break;
      case 'C':
        copyRange = true;
        break;
      case 'c':
        compressed = true;
        break;
      case 'o': {
        const o = addOptionList(img, options, r.optarg!);
        if (o === null) return 1;
        options = o;
        break;
      }
      case 'l': {
        const arg = parseSnapshotArg(img, r.optarg!);
        if (!arg) return 1;
        snapshot = arg;
        break;
      }
      case 'S': {
        const c = imgCvtnum('buffer size for sparse output', r.optarg!);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        if (c.value % BigInt(SECTOR) !== 0n || c.value / BigInt(SECTOR) > BigInt(MAX_BUF_SECTORS)) {
          img.error(
            `Invalid buffer size for sparse output specified. Valid sizes are multiples of ${SECTOR} up to ${MAX_BUF_SECTORS * SECTOR}. Select 0 to disable sparse detection (fully allocates output).`,
          );
          return 1;
        }
        minSparse = Number(c.value / BigInt(SECTOR));
        explicitMinSparse = true;
        break;
      }
      case 'p':
        break;
      case 't':
        cache = r.optarg!;
        break;
      case 'T':
        srcCache = r.optarg!;
        break;
      case 'n':
        skipCreate = true;
        break;
      case 'm': {
        const v = qemuStrtou64(r.optarg!, 0);
        if (!v.ok || v.value < 1n || v.value > BigInt(MAX_COROUTINES)) {
          img.error(`Invalid number of coroutines. Allowed number of coroutines is between 1 and ${MAX_COROUTINES}`);
          return 1;
        }
        break;
      }
      case 'W':
        break;
      case 'r': {
        const c = imgCvtnum('rate limit', r.optarg!);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        break;
      }
      case OPTION_SALVAGE:
        salvage = true;
        break;
      case OPTION_TARGET_IMAGE_OPTS:
        tgtImageOpts = true;
        break;
      case OPTION_TARGET_IS_ZERO:
        targetIsZero = true;
        break;
      case OPTION_BITMAPS:
        bitmaps = true;
        break;
      case OPTION_SKIP_BROKEN:
        skipBroken = true;
        break;
    }
  }

  if (!outFmt && !tgtImageOpts) outFmt = 'raw';
  if (compressed && copyRange) {
    img.error('Cannot enable copy offloading when -c is used');
    return 1;
  }
  if (explicitMinSparse && copyRange) {
    img.error('Cannot enable copy offloading when -S is used');
    return 1;
  }
  if (copyRange && salvage) {
    img.error('Cannot use copy offloading in salvaging mode');
    return 1;
  }
  if (tgtImageOpts && !skipCreate) {
    img.error('--target-image-opts requires use of -n flag');
    return 1;
  }
  if (skipCreate && options !== undefined) {
    img.error('-o has no effect when skipping image creation');
    return 1;
  }
  if (targetIsZero && !skipCreate) {
    img.error('--target-is-zero requires use of -n flag');
    return 1;
  }
  if (skipBroken && !bitmaps) {
    img.error('--skip-broken-bitmaps requires --bitmaps');
    return 1;
  }

  const operands = g.operands();
  const srcNum = operands.length - 1;
  const outFilename = srcNum >= 1 ? operands[operands.length - 1] : undefined;

  if (options !== undefined && hasHelpOption(options)) {
    if (outFmt) return printBlockOptionHelp(img, outFilename, outFmt);
    img.error('Option help requires a format be specified');
    return 1;
  }
  if (srcNum < 1) {
    img.error('Must specify image file name');
    return 1;
  }
  const srcCs = cacheOption(img, srcCache, 'source ');
  if (!srcCs) return 1;

  const sources: BlockBackend[] = [];
  let target: BlockBackend | null = null;
  const closeAll = () => {
    target?.close();
    for (const s of sources) s.close();
  };
  try {
    const srcSectors: number[] = [];
    let totalSectors = 0;
    for (let i = 0; i < srcNum; i++) {
      const req = args.request(operands[i]!, { readOnly: true, writethrough: srcCs.writethrough, cache: srcCs });
      const blk = imgOpen(img, req);
      if (!blk) return 1;
      sources.push(blk);
      const sectors = Math.ceil(blk.length() / SECTOR);
      srcSectors.push(sectors);
      totalSectors += sectors;
    }
    if (snapshot?.kind === 'name' && srcNum > 1) {
      img.error('No support for concatenating multiple snapshot');
      return 1;
    }
    if (snapshot && !loadSnapshotArg(img, sources[0]!, snapshot)) return 1;

    let opts: CreateOptions | undefined;
    if (!skipCreate) {
      const descs = createOptsFor(outFmt!);
      if (!descs) {
        if (NON_CREATING_DRIVERS.has(outFmt!) || UNIMPLEMENTED_CREATING_FORMATS.has(outFmt!)) {
          img.error(`Format driver '${outFmt}' does not support image creation`);
        } else {
          img.error(`Unknown file format '${outFmt}'`);
        }
        return 1;
      }
      opts = new CreateOptions(appendDescs(descs, protocolCreateOpts()));
      opts.warn = (m) => img.warn(m);
      if (options !== undefined) {
        try {
          opts.parse(options);
        } catch (err) {
          img.reportErr(err);
          return 1;
        }
      }
      opts.setNumber('size', BigInt(totalSectors * SECTOR));
      if (outBaseimg !== undefined) {
        if (!opts.desc('backing_file')) {
          img.error(`Backing file not supported for file format '${outFmt}'`);
          return 1;
        }
        opts.set('backing_file', outBaseimg);
      }
      if (outBasefmt !== undefined) {
        if (!opts.desc('backing_fmt')) {
          img.error(`Backing file format not supported for file format '${outFmt}'`);
          return 1;
        }
        opts.set('backing_fmt', outBasefmt);
      }
    }
    if (opts?.isSet('backing_file')) outBaseimg = opts.get('backing_file');
    const targetHasBacking = outBaseimg !== undefined;
    if (srcNum > 1 && outBaseimg !== undefined) {
      img.error('Having a backing file for the target makes no sense when concatenating multiple input images');
      return 1;
    }
    if (targetHasBacking && targetIsZero) {
      img.error('Cannot use --target-is-zero with a backing file');
      return 1;
    }
    if (compressed && opts) {
      if (outFmt !== 'qcow2') {
        img.error('Compression not supported for this file format');
        return 1;
      }
      if ((opts.isSet('encryption') && opts.getBool('encryption', false)) || opts.isSet('encrypt.format')) {
        img.error('Compression and encryption not supported at the same time');
        return 1;
      }
      const prealloc = opts.isSet('preallocation') ? opts.get('preallocation') : undefined;
      if (prealloc !== undefined && prealloc !== 'off') {
        img.error('Compression and preallocation not supported at the same time');
        return 1;
      }
    }
    if (bitmaps) {
      if (srcNum > 1) {
        img.error('Copying bitmaps only possible with single source');
        return 1;
      }
      img.error('Source lacks bitmap support');
      return 1;
    }

    if (!skipCreate && opts) {
      try {
        bdrvCreate(img.createEnv(), outFmt!, outFilename!, opts);
      } catch (err) {
        img.reportErr(err, `${outFilename}: error while converting ${outFmt}: `);
        return 1;
      }
    }

    const cs = cacheOption(img, cache);
    if (!cs) return 1;
    const treq: ImgOpenRequest = {
      imageOpts: skipCreate ? tgtImageOpts : false,
      filename: outFilename!,
      readOnly: false,
      writethrough: cs.writethrough,
      cache: cs,
      forceShare: false,
      unmap: minSparse !== 0,
    };
    if (outFmt !== undefined) treq.fmt = outFmt;
    target = imgOpen(img, treq);
    if (!target) return 1;
    const isQcow2 = qcow2Of(target.root) !== undefined;
    if (compressed && !isQcow2) {
      img.error('Compression not supported for this file format');
      return 1;
    }
    if (skipCreate) {
      const outSectors = Math.ceil(target.length() / SECTOR);
      if (outSectors < totalSectors) {
        img.error('output file is smaller than input file');
        return 1;
      }
    }
    const backing = targetHasBacking ? backingOf(target.root) : undefined;
    const clusterSize = qcow2Of(target.root)?.clusterSize ?? 0;
    if (compressed && clusterSize === 0) {
      img.error('could not get block driver info');
      return 1;
    }
    const s: ConvertState = {
      src: sources,
      srcSectors,
      totalSectors,
      target,
      targetHasBacking,
      targetBackingSectors: backing ? Math.ceil(backing.length() / SECTOR) : -1,
      hasZeroInit: false,
      compressed,
      copyRange,
      salvage,
      minSparse,
      alignment: Math.max(minSparse === 0 ? 1 : 2 ** Math.floor(Math.log2(minSparse)), 1),
      clusterSectors: clusterSize / SECTOR,
      bufSectors: IO_BUF_SIZE / SECTOR,
      status: 'data',
      sectorNextStatus: 0,
    };
    const ret = doCopy(img, s, !skipCreate, targetIsZero);
    return ret === 0 ? 0 : 1;
  } finally {
    closeAll();
  }
}
