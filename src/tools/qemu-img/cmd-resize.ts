/**
 * qemu-img resize FILE [+|-]SIZE. The size is taken off argv before option parsing so that
 * negative sizes are not options.
 */
import { CreateOptions } from '../../block/create-opts.ts';
import type { Prealloc } from '../../block/types.ts';
import { ErrnoError, strerror } from '../../errno.ts';
import { OPTION_PREALLOCATION, OPTION_SHRINK, imgOpen, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS } from './common.ts';
import { errorMessage, type Img } from './img.ts';

const PREALLOC_MODES: readonly Prealloc[] = ['off', 'metadata', 'falloc', 'full'];

export function imgResize(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  if (argv.length < 3) img.errorExit('Not enough arguments');
  let sizeArg = argv[argv.length - 1]!;
  const optionArgv = argv.slice(0, -1);

  let shrink = false;
  let prealloc: Prealloc = 'off';

  const g = img.getopt(optionArgv, ':f:hq', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    { name: 'preallocation', hasArg: true, val: OPTION_PREALLOCATION },
    { name: 'shrink', hasArg: false, val: OPTION_SHRINK },
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case OPTION_PREALLOCATION:
        if (!PREALLOC_MODES.includes(r.optarg as Prealloc)) {
          img.error(`Invalid preallocation mode '${r.optarg}'`);
          return 1;
        }
        prealloc = r.optarg as Prealloc;
        break;
      case OPTION_SHRINK:
        shrink = true;
        break;
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting image file name and size');
  const filename = rest[0]!;

  let relative = 0;
  if (sizeArg.startsWith('+')) {
    relative = 1;
    sizeArg = sizeArg.slice(1);
  } else if (sizeArg.startsWith('-')) {
    relative = -1;
    sizeArg = sizeArg.slice(1);
  }
  const param = new CreateOptions([{ name: 'size', type: 'size', help: 'Virtual disk size' }]);
  param.warn = (m) => img.warn(m);
  try {
    param.set('size', sizeArg);
  } catch (err) {
    img.reportErr(err);
    return 1;
  }
  // qemu_opt_get_size returns uint64; the arithmetic is done in int64.
  const BDRV_MAX_LENGTH = 2n ** 63n - 2n ** 30n;
  const asInt64 = (v: bigint) => BigInt.asIntN(64, v);
  const n = asInt64(param.getSize('size', 0n));

  const req = args.request(filename, { readOnly: false, writethrough: false });
  const blk = imgOpen(img, req);
  if (!blk) return 1;
  try {
    const current = BigInt(blk.length());
    const total = relative ? asInt64(current + n * BigInt(relative)) : n;
    if (total <= 0n) {
      img.error('New image size must be positive');
      return 1;
    }
    if (total <= current && prealloc !== 'off') {
      img.error('Preallocation can only be used for growing images');
      return 1;
    }
    if (total < current && !shrink) {
      img.error('Use the --shrink option to perform a shrink operation.');
      img.warn(
        "Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.",
      );
      return 1;
    }
    // bdrv_co_truncate's request check, before any driver (and before a JS number rounds it).
    if (total > BDRV_MAX_LENGTH) {
      img.error(`offset(${total}) exceeds maximum(${BDRV_MAX_LENGTH})`);
      return 1;
    }
    try {
      blk.truncate(Number(total), { exact: true, prealloc });
    } catch (err) {
      img.error(err instanceof ErrnoError && err.message === '' ? strerror(err.errno) : errorMessage(err));
      return 1;
    }
    img.qprint('Image resized.\n');
    return 0;
  } finally {
    blk.close();
  }
}
