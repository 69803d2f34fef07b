/**
 * qemu-img info [--backing-chain]: ImageInfo per image (opened without backing, no I/O),
 * printed human or json.
 */
import type { BlockNode } from '../../block/types.ts';
import { fullBackingFilename } from '../../block/create.ts';
import { OPTION_BACKING_CHAIN, OPTION_IMAGE_OPTS, OPTION_OBJECT, OPTION_OUTPUT, ObjectList, imgOpen, parseOutput } from './common.ts';
import { formatSpecific, qcow2Of, snapshotsOf } from './engine.ts';
import { formatInfoHuman, formatInfoJson, formatInfoJsonList, type ImageInfo } from './format.ts';
import { errorMessage, type Img } from './img.ts';

/**
 * bdrv_get_allocated_file_size: files report their blocks, null devices 0, other protocol
 * drivers (blkdebug) nothing; formats sum their data children.
 */
function allocatedFileSize(node: BlockNode): number | undefined {
  const withAlloc = node as unknown as { allocatedBytes?: () => number };
  if (typeof withAlloc.allocatedBytes === 'function') return withAlloc.allocatedBytes();
  if (node.driver === 'null-co' || node.driver === 'null-aio') return 0;
  if (node.driver === 'blkdebug') return undefined;
  let sum = 0;
  for (const [role, child] of node.children) {
    if (role === 'backing') continue;
    const n = allocatedFileSize(child);
    if (n === undefined) return undefined;
    sum += n;
  }
  return sum;
}

/** bdrv_query_image_info */
export function queryImageInfo(node: BlockNode): ImageInfo {
  const info: ImageInfo = { filename: node.filename, format: node.driver, virtualSize: node.length() };
  const actual = allocatedFileSize(node);
  if (actual !== undefined) info.actualSize = actual;
  const q = qcow2Of(node);
  if (q) {
    const h = q.header;
    info.clusterSize = h.clusterSize;
    info.dirtyFlag = h.dirty;
    if (h.cryptMethod !== 0) info.encrypted = true;
    if (h.backingFile) {
      info.backingFilename = h.backingFile;
      try {
        info.fullBackingFilename = fullBackingFilename(node.filename, h.backingFile);
      } catch {
        // "cannot determine actual path"
      }
      if (h.backingFormat) info.backingFilenameFormat = h.backingFormat;
    }
    const snaps = snapshotsOf(node);
    if (snaps.length > 0 && !q.hasExternalDataFile) info.snapshots = snaps;
    const spec = formatSpecific(node);
    if (spec) info.formatSpecific = spec;
  } else if (hasDriverInfo(node)) {
    info.dirtyFlag = false;
  }
  return info;
}

/** Whether bdrv_get_info succeeds: raw passes it to its file, which only file-posix answers. */
function hasDriverInfo(node: BlockNode): boolean {
  if (node.driver === 'file') return true;
  if (node.driver === 'raw') {
    const file = node.children.get('file');
    return file !== undefined && hasDriverInfo(file);
  }
  return false;
}

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
