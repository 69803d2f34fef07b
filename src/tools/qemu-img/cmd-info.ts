/**
 * qemu-img info [--backing-chain]: ImageInfo per image (opened without backing, no I/O),
 * printed human or json.
 */
import { OPTION_BACKING_CHAIN, OPTION_IMAGE_OPTS, OPTION_OBJECT, OPTION_OUTPUT, ObjectList, imgOpen, parseOutput } from './common.ts';
import { formatInfoHuman, formatInfoJson, formatInfoJsonList, type ImageInfo } from './format.ts';
import { queryImageInfo } from './image-info.ts';
import { errorMessage, type Img } from './img.ts';

export function imgInfo(img: Img, argv: string[]): number {
  let fmt: string | undefined;
  let output: string | undefined;
  let chain = false;
  let imageOpts = false;
  let forceShare = false;
  const objects = new ObjectList();

  const g = img.getopt(argv, ':f:hU', [
    { name: 'help', hasArg: false, val: 'h' },
    { name: 'format', hasArg: true, val: 'f' },
    { name: 'output', hasArg: true, val: OPTION_OUTPUT },
    { name: 'backing-chain', hasArg: false, val: OPTION_BACKING_CHAIN },
    { name: 'object', hasArg: true, val: OPTION_OBJECT },
    { name: 'image-opts', hasArg: false, val: OPTION_IMAGE_OPTS },
    { name: 'force-share', hasArg: false, val: 'U' },
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    switch (r.opt) {
      case 'f':
        fmt = r.optarg!;
        break;
      case 'U':
        forceShare = true;
        break;
      case OPTION_OUTPUT:
        output = r.optarg!;
        break;
      case OPTION_BACKING_CHAIN:
        chain = true;
        break;
      case OPTION_OBJECT:
        if (!objects.add(img, r.optarg!)) return 1;
        break;
      case OPTION_IMAGE_OPTS:
        imageOpts = true;
        break;
    }
  }
  const rest = g.operands();
  if (rest.length !== 1) img.errorExit('Expecting one image file name');
  const mode = parseOutput(img, output);
  if (mode === null) return 1;
  if (!objects.create(img)) return 1;

  const list: ImageInfo[] = [];
  const seen = new Set<string>();
  let filename: string | undefined = rest[0]!;
  let format = fmt;
  let opts = imageOpts;
  while (filename !== undefined) {
    if (seen.has(filename)) {
      img.error(`Backing file '${filename}' creates an infinite loop.`);
      return 1;
    }
    seen.add(filename);
    const req: Parameters<typeof imgOpen>[1] = { imageOpts: opts, filename, readOnly: true, writethrough: false, forceShare, noBacking: true, noIo: true };
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
