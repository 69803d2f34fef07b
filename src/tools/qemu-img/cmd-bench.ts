/**
 * qemu-img bench: COUNT requests of BUFSIZE bytes at OFFSET, OFFSET+STEP, ... (wrapping at
 * the image end), reads or writes of a pattern byte, with optional periodic flushes.
 *
 * QEMU keeps DEPTH requests in flight with AIO. This engine is synchronous, so it coalesces
 * instead: up to DEPTH consecutive requests that touch adjacent bytes (STEP == BUFSIZE, no
 * wrap, no flush point between them) are issued as one request of their combined size. The
 * same bytes reach the same places in the same order, and clusters are allocated in the same
 * order, so the image ends up as QEMU leaves it; only the per-request overhead is shared.
 */
import { isValidAioMode } from '../../block/open.ts';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { OPTION_FLUSH_INTERVAL, OPTION_NO_DRAIN, OPTION_PATTERN, cacheMode, imgOpen, ImageArgs, LONG_HELP, LONG_IMAGE_OPTS, LONG_FORCE_SHARE, type ImgOpenRequest } from './common.ts';
import { formatFixed } from '../common/cformat.ts';
import type { Img } from './img.ts';
import { INT_MAX, imgCvtnum, cvtnumFull, qemuStrtou64 } from '../common/numbers.ts';
import { alignedBytes } from '../../storage/aligned.ts';

function errnoOf(err: unknown): number {
  return err instanceof ErrnoError ? err.errno : Errno.EIO;
}

export function imgBench(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let isWrite = false;
  let count = 75000;
  let depth = 64;
  let offset = 0n;
  let bufsize = 4096;
  let pattern = 0;
  let step = 0;
  let flushInterval = 0;
  let drainOnFlush = true;
  let writethrough = false;
  let cache: ReturnType<typeof cacheMode> = null;
  let nativeAio = false;

  const g = img.getopt(argv, ':hc:d:f:ni:o:qs:S:t:wU', [
    LONG_HELP,
    { name: 'flush-interval', hasArg: true, val: OPTION_FLUSH_INTERVAL },
    LONG_IMAGE_OPTS,
    { name: 'pattern', hasArg: true, val: OPTION_PATTERN },
    { name: 'no-drain', hasArg: false, val: OPTION_NO_DRAIN },
    LONG_FORCE_SHARE,
  ]);
  const ulong = (text: string, max: bigint): number | null => {
    const r = qemuStrtou64(text, 0);
    if (!r.ok || r.value > max) return null;
    return Number(r.value);
  };
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'c': {
        const v = ulong(r.optarg!, INT_MAX);
        if (v === null) {
          img.error('Invalid request count specified');
          return 1;
        }
        count = v;
        break;
      }
      case 'd': {
        const v = ulong(r.optarg!, INT_MAX);
        if (v === null) {
          img.error('Invalid queue depth specified');
          return 1;
        }
        depth = v;
        break;
      }
      case 'n':
        nativeAio = true;
        break;
      case 'i':
        if (!isValidAioMode(r.optarg!)) {
          img.error(`Invalid aio option: ${r.optarg}`);
          return 1;
        }
        if (r.optarg === 'native') nativeAio = true;
        break;
      case 'o': {
        const c = imgCvtnum('offset', r.optarg!);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        offset = c.value;
        break;
      }
      case 's':
      case 'S': {
        const c = cvtnumFull(r.opt === 's' ? 'buffer size' : 'step_size', r.optarg!, 0n, INT_MAX);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        if (r.opt === 's') bufsize = Number(c.value);
        else step = Number(c.value);
        break;
      }
      case 't': {
        cache = cacheMode(r.optarg!);
        if (!cache) {
          img.error('Invalid cache mode');
          return 1;
        }
        writethrough = cache.writethrough;
        break;
      }
      case 'w':
        isWrite = true;
        break;
      case OPTION_PATTERN: {
        const v = ulong(r.optarg!, 0xffn);
        if (v === null) {
          img.error('Invalid pattern byte specified');
          return 1;
        }
        pattern = v;
        break;
      }
      case OPTION_FLUSH_INTERVAL: {
        const v = ulong(r.optarg!, INT_MAX);
        if (v === null) {
          img.error('Invalid flush interval specified');
          return 1;
        }
        flushInterval = v;
        break;
      }
      case OPTION_NO_DRAIN:
        drainOnFlush = false;
        break;
    }
  }
  void drainOnFlush;
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  const filename = rest[0]!;
  if (!isWrite && flushInterval) {
    img.error('--flush-interval is only available in write tests');
    return 1;
  }
  if (flushInterval && flushInterval < depth) {
    img.error("Flush interval can't be smaller than depth");
    return 1;
  }

  if (nativeAio && !cache?.direct) {
    img.error(`Could not open '${filename}': aio=native was specified, but it requires cache.direct=on, which was not specified.`);
    return 1;
  }
  const req: ImgOpenRequest = { imageOpts: args.imageOpts, filename, readOnly: !isWrite, writethrough, forceShare: args.forceShare };
  if (cache) req.cache = cache;
  if (args.fmt !== undefined) req.fmt = args.fmt;
  const blk = imgOpen(img, req);
  if (!blk) return 1;
  try {
    const imageSize = BigInt(blk.length());
    const stepSize = step || bufsize;
    img.print(
      `Sending ${count} ${isWrite ? 'write' : 'read'} requests, ${bufsize} bytes each, ${depth} in parallel ` +
        `(starting at offset ${offset}, step size ${stepSize})\n`,
    );
    if (flushInterval) img.print(`Sending flush every ${flushInterval} requests\n`);

    const flushAfter = (i: number): boolean => flushInterval > 0 && (count - i - 1) % flushInterval === 0 && i !== count - 1;
    const adjacent = stepSize === bufsize && bufsize > 0;
    const perBatch = adjacent ? Math.max(1, Math.min(depth, Math.floor(MAX_BATCH_BYTES / bufsize))) : 1;
    const buf = alignedBytes(bufsize * perBatch).fill(pattern);
    const size = Number(imageSize);
    const start = process.hrtime.bigint();
    let pos = offset;
    for (let i = 0; i < count; ) {
      const at = Number(pos);
      let n = 1;
      while (n < perBatch && i + n < count && !flushAfter(i + n - 1) && at + (n + 1) * bufsize <= size) n++;
      pos = imageSize === 0n ? 0n : (pos + BigInt(n * stepSize)) % imageSize;
      const part = n === perBatch ? buf : buf.subarray(0, n * bufsize);
      try {
        if (isWrite) blk.write(at, part);
        else blk.read(at, part);
      } catch (err) {
        img.error(`Failed request: ${strerror(errnoOf(err))}`);
        throw new BenchExit();
      }
      i += n;
      if (flushAfter(i - 1)) {
        try {
          blk.flush();
        } catch (err) {
          img.error(`Failed flush request: ${strerror(errnoOf(err))}`);
          throw new BenchExit();
        }
      }
    }
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    img.print(`Run completed in ${formatFixed(elapsed, 3)} seconds.\n`);
    return 0;
  } catch (err) {
    if (err instanceof BenchExit) return 1;
    throw err;
  } finally {
    blk.close();
  }
}

class BenchExit extends Error {}

/**
 * Upper bound of one coalesced request. Small requests gain most (the per-request overhead is
 * shared); past about 1 MiB the buffer no longer stays in the CPU caches and large sequential
 * reads measured slower, not faster.
 */
const MAX_BATCH_BYTES = 1024 * 1024;
