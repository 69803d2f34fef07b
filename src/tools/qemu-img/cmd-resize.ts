/**
 * qemu-img resize FILE [+|-]SIZE. The size is taken off argv before option parsing so that
 * negative sizes are not options.
 */
import { CreateOptions } from '../../block/create-opts.ts';
import type { Prealloc } from '../../block/types.ts';
import { ErrnoError, strerror } from '../../errno.ts';
import { OPTION_IMAGE_OPTS, OPTION_OBJECT, OPTION_PREALLOCATION, OPTION_SHRINK, ObjectList, imgOpen } from './common.ts';
import { errorMessage, type Img } from './img.ts';

const PREALLOC_MODES: readonly Prealloc[] = ['off', 'metadata', 'falloc', 'full'];

export function imgResize(img: Img, argv: string[]): number {
  if (argv.length < 3) img.errorExit('Not enough arguments');
  let sizeArg = argv[argv.length - 1]!;
  const args = argv.slice(0, -1);

  let fmt: string | undefined;
  let imageOpts = false;
  let shrink = false;
  let prealloc: Prealloc = 'off';
  const objects = new ObjectList();

  const g = img.getopt(args, ':f:hq', [
    { name: 'help', hasArg: false, val: 'h' },
    { name: 'object', hasArg: true, val: OPTION_OBJECT },
    { name: 'image-opts', hasArg: false, val: OPTION_IMAGE_OPTS },
    { name: 'preallocation', hasArg: true, val: OPTION_PREALLOCATION },
    { name: 'shrink', hasArg: false, val: OPTION_SHRINK },
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    switch (r.opt) {
      case 'f':
        fmt = r.optarg!;
        break;
      case 'q':
        img.quiet = true;
        break;
      case OPTION_OBJECT:
        if (!objects.add(img, r.optarg!)) return 1;
        break;
      case OPTION_IMAGE_OPTS:
        imageOpts = true;
        break;
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
  if (!objects.create(img)) return 1;

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
  const asInt64 = (v: bigint) => BigInt.asIntN(64, v);
  const n = asInt64(param.getSize('size', 0n));

  const req: Parameters<typeof imgOpen>[1] = { imageOpts, filename, readOnly: false, writethrough: false, forceShare: false };
  if (fmt !== undefined) req.fmt = fmt;
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
