/**
 * qemu-img bitmap: argument checks as QEMU 7.2 makes them. Persistent dirty bitmaps are not
 * implemented by the built-in engine, so every action fails after the image opened.
 */
import { OPTION_ADD, OPTION_CLEAR, OPTION_DISABLE, OPTION_ENABLE, OPTION_MERGE, OPTION_REMOVE, imgOpen, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS } from './common.ts';
import type { Img } from './img.ts';
import { imgCvtnum } from '../common/numbers.ts';

export function imgBitmap(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let srcFmt: string | undefined;
  let srcFilename: string | undefined;
  let granularity = 0n;
  let add = false;
  let merge = false;
  const actions: string[] = [];

  const g = img.getopt(argv, ':b:f:F:g:h', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    { name: 'add', hasArg: false, val: OPTION_ADD },
    { name: 'remove', hasArg: false, val: OPTION_REMOVE },
    { name: 'clear', hasArg: false, val: OPTION_CLEAR },
    { name: 'enable', hasArg: false, val: OPTION_ENABLE },
    { name: 'disable', hasArg: false, val: OPTION_DISABLE },
    { name: 'merge', hasArg: true, val: OPTION_MERGE },
    { name: 'granularity', hasArg: true, val: 'g' },
    { name: 'source-file', hasArg: true, val: 'b' },
    { name: 'source-format', hasArg: true, val: 'F' },
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'b':
        srcFilename = r.optarg!;
        break;
      case 'F':
        srcFmt = r.optarg!;
        break;
      case 'g': {
        const c = imgCvtnum('granularity', r.optarg!);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        granularity = c.value;
        break;
      }
      case OPTION_ADD:
        actions.push('add');
        add = true;
        break;
      case OPTION_REMOVE:
        actions.push('remove');
        break;
      case OPTION_CLEAR:
        actions.push('clear');
        break;
      case OPTION_ENABLE:
        actions.push('enable');
        break;
      case OPTION_DISABLE:
        actions.push('disable');
        break;
      case OPTION_MERGE:
        actions.push('merge');
        merge = true;
        break;
    }
  }
  if (actions.length === 0) {
    img.error('Need at least one of --add, --remove, --clear, --enable, --disable, or --merge');
    return 1;
  }
  if (granularity && !add) {
    img.error('granularity only supported with --add');
    return 1;
  }
  if (srcFmt !== undefined && srcFilename === undefined) {
    img.error('-F only supported with -b');
    return 1;
  }
  if (srcFilename !== undefined && !merge) {
    img.error('Merge bitmap source file only supported with --merge');
    return 1;
  }
  const rest = g.operands();
  if (rest.length !== 2) {
    img.error('Expecting filename and bitmap name');
    return 1;
  }
  const [filename, bitmap] = rest as [string, string];
  const req = args.request(filename, { readOnly: false, writethrough: false });
  const blk = imgOpen(img, req);
  if (!blk) return 1;
  try {
    img.error(`Operation ${actions[0]} on bitmap ${bitmap} failed: Persistent dirty bitmaps are not supported by the built-in engine`);
    return 1;
  } finally {
    blk.close();
  }
}
