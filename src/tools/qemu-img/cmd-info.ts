/**
 * qemu-img info [--backing-chain]: ImageInfo per image (opened without backing, no I/O),
 * printed human or json.
 */
import { OPTION_BACKING_CHAIN, OPTION_OUTPUT, imgOpen, parseOutput, ImageArgs, LONG_HELP, LONG_FORMAT, LONG_OUTPUT, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE, type ImgOpenRequest } from './common.ts';
import { formatInfoHuman, formatInfoJson, formatInfoJsonList, type ImageInfo } from './format.ts';
import { queryImageInfo } from './image-info.ts';
import { errorMessage, type Img } from './img.ts';

export function imgInfo(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let output: string | undefined;
  let chain = false;

  const g = img.getopt(argv, ':f:hU', [
    LONG_HELP,
    LONG_FORMAT,
    LONG_OUTPUT,
    { name: 'backing-chain', hasArg: false, val: OPTION_BACKING_CHAIN },
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    LONG_FORCE_SHARE,
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case OPTION_OUTPUT:
        output = r.optarg!;
        break;
      case OPTION_BACKING_CHAIN:
        chain = true;
        break;
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  const mode = parseOutput(img, output);
  if (mode === null) return 1;

  const list: ImageInfo[] = [];
  const seen = new Set<string>();
  let filename: string | undefined = rest[0]!;
  let format = args.fmt;
  let opts = args.imageOpts;
  while (filename !== undefined) {
    if (seen.has(filename)) {
      img.error(`Backing file '${filename}' creates an infinite loop.`);
      return 1;
    }
    seen.add(filename);
    const req: ImgOpenRequest = { imageOpts: opts, filename, readOnly: true, writethrough: false, forceShare: args.forceShare, noBacking: true, noIo: true };
    if (format !== undefined) req.fmt = format;
    const blk = imgOpen(img, req);
    if (!blk) return 1;
    let info: ImageInfo;
    try {
      info = queryImageInfo(blk.root);
    } catch (err) {
      img.error(errorMessage(err));
      blk.close();
      return 1;
    }
    blk.close();
    list.push(info);
    filename = undefined;
    format = undefined;
    opts = false;
    if (chain) {
      if (info.fullBackingFilename !== undefined) filename = info.fullBackingFilename;
      else if (info.backingFilename !== undefined) {
        img.error(`Could not determine absolute backing filename, but backing filename '${info.backingFilename}' present`);
        return 1;
      }
      if (info.backingFilenameFormat !== undefined) format = info.backingFilenameFormat;
    }
  }

  if (mode === 'human') img.print(list.map(formatInfoHuman).join('\n'));
  else img.print(chain ? formatInfoJsonList(list) : formatInfoJson(list[0]!));
  return 0;
}
