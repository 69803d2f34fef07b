/**
 * qemu-img check. Exit codes: 0 good, 1 check not completed, 2 corrupted, 3 leaks only,
 * 63 format without checks.
 */
import { ErrnoError, Errno, strerror } from '../../errno.ts';
import { BDRV_DEFAULT_CACHE, OPTION_OUTPUT, imgOpen, parseOutput, ImageArgs, LONG_HELP, LONG_FORMAT, LONG_OUTPUT, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE, cacheOption } from './common.ts';
import { checkImage, type CheckFix, type CheckResult } from './engine.ts';
import { formatCheckHuman, formatCheckJson, formatCheckRepaired, type ImageCheck } from './format.ts';
import { errorMessage, type Img } from './img.ts';

function toImageCheck(filename: string, format: string, r: CheckResult): ImageCheck {
  return { filename, format, ...r };
}

export function imgCheck(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let output: string | undefined;
  let cache = BDRV_DEFAULT_CACHE;
  let fix: CheckFix | null = null;

  const g = img.getopt(argv, ':hf:r:T:qU', [
    LONG_HELP,
    LONG_FORMAT,
    { name: 'repair', hasArg: true, val: 'r' },
    LONG_OUTPUT,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'r':
        if (r.optarg === 'leaks') fix = { leaks: true, errors: false };
        else if (r.optarg === 'all') fix = { leaks: true, errors: true };
        else img.errorExit(`Unknown option value for -r (expecting 'leaks' or 'all'): ${r.optarg}`);
        break;
      case OPTION_OUTPUT:
        output = r.optarg!;
        break;
      case 'T':
        cache = r.optarg!;
        break;
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  const filename = rest[0]!;

  const mode = parseOutput(img, output);
  if (mode === null) return 1;
  const cs = cacheOption(img, cache, 'source ');
  if (!cs) return 1;

  const req = args.request(filename, { readOnly: fix === null, writethrough: cs.writethrough, cache: cs, check: true });
  const blk = imgOpen(img, req);
  if (!blk) return 1;

  const report = (line: string, errorReport: boolean) => {
    const text = line.endsWith('\n') ? line : `${line}\n`;
    if (errorReport) img.ctx.out.stderr(`qemu-img: ${text}`);
    else img.ctx.out.stderr(text);
  };
  const run = (f: CheckFix): CheckResult | number => {
    try {
      return checkImage(blk.root, f, report);
    } catch (err) {
      return err instanceof ErrnoError ? -err.errno : -Errno.EIO;
    }
  };

  try {
    let result = run(fix ?? { leaks: false, errors: false });
    if (result === -Errno.ENOTSUP) {
      img.error('This image format does not support checks');
      return 63;
    }
    let ret = typeof result === 'number' ? result : 0;
    if (typeof result !== 'number' && (result.corruptionsFixed || result.leaksFixed)) {
      const { leaksFixed, corruptionsFixed } = result;
      if (mode === 'human') img.qprint(formatCheckRepaired(leaksFixed, corruptionsFixed));
      const again = run({ leaks: false, errors: false });
      if (typeof again === 'number') {
        ret = again;
      } else {
        result = { ...again, leaksFixed, corruptionsFixed };
      }
    }
    const check = typeof result === 'number' ? null : toImageCheck(filename, blk.root.driver, result);
    if (ret === 0 && check) {
      img.qprint(mode === 'human' ? formatCheckHuman(check) : formatCheckJson(check));
    }
    if (ret !== 0 || (check && check.checkErrors)) {
      if (ret !== 0) img.error(`Check failed: ${strerror(-ret)}`);
      else img.error('Check failed');
      return 1;
    }
    if (check!.corruptions) return 2;
    if (check!.leaks) return 3;
    return 0;
  } catch (err) {
    img.error(errorMessage(err));
    return 1;
  } finally {
    blk.close();
  }
}
