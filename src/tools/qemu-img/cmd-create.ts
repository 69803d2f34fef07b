/**
 * qemu-img create (img_create + bdrv_img_create) and the `-o help` listing shared with
 * convert.
 */
import {
  NON_CREATING_DRIVERS,
  QemuError,
  UNIMPLEMENTED_CREATING_FORMATS,
  appendDescs,
  createOptsFor,
  formatOptionHelp,
  hasHelpOption,
  isValidOptionList,
  protocolCreateOpts,
} from '../../block/create-opts.ts';
import { bdrvImgCreate, type BackingProbe } from '../../block/create.ts';
import { ImgOpenFailure, openImgBackend, type ImgOpenRequest, ImageArgs, LONG_HELP, LONG_OBJECT } from './common.ts';
import { errorMessage, type Img } from './img.ts';
import { imgCvtnum } from '../common/numbers.ts';

/** Appends one -o argument to the collected list (validity checked first). */
export function addOptionList(img: Img, current: string | undefined, arg: string): string | null {
  if (!isValidOptionList(arg)) {
    img.error(`Invalid option list: ${arg}`);
    return null;
  }
  return current === undefined ? arg : `${current},${arg}`;
}

/** Whether a filename names a protocol other than file (bdrv_find_protocol). */
function protocolOf(filename: string): string {
  const m = /^([^:/]*):/.exec(filename);
  if (!m || filename.startsWith('json:')) return 'file';
  return m[1]!;
}

/** print_block_option_help: 0, or 1 after an error. */
export function printBlockOptionHelp(img: Img, filename: string | undefined, fmt: string): number {
  const descs = createOptsFor(fmt);
  if (!descs) {
    if (NON_CREATING_DRIVERS.has(fmt) || UNIMPLEMENTED_CREATING_FORMATS.has(fmt)) {
      img.error(`Format driver '${fmt}' does not support image creation`);
    } else {
      img.error(`Unknown file format '${fmt}'`);
    }
    return 1;
  }
  let list = descs;
  if (filename !== undefined) {
    const proto = protocolOf(filename);
    if (proto !== 'file') {
      const known = ['blkdebug', 'blkverify', 'null-co', 'null-aio', 'nbd', 'http', 'https', 'ftp', 'ftps', 'ssh', 'iscsi', 'nfs', 'rbd', 'gluster', 'vvfat', 'host_device', 'host_cdrom', 'file'];
      if (!known.includes(proto)) {
        img.error(`Unknown protocol '${proto}'`);
        return 1;
      }
      img.error(`Protocol driver '${proto}' does not support image creation`);
      return 1;
    }
    list = appendDescs(descs, protocolCreateOpts());
  }
  img.print(filename !== undefined ? 'Supported options:\n' : `Supported ${fmt} options:\n`);
  img.print(formatOptionHelp(list));
  if (filename === undefined) {
    img.print('\nThe protocol level may support further options.\nSpecify the target filename to include those options.\n');
  }
  return 0;
}

export function imgCreate(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let baseFmt: string | undefined;
  let baseFilename: string | undefined;
  let options: string | undefined;
  let noBacking = false;

  const g = img.getopt(argv, ':F:b:f:ho:qu', [
    LONG_HELP,
    LONG_OBJECT,
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'F':
        baseFmt = r.optarg!;
        break;
      case 'b':
        baseFilename = r.optarg!;
        break;
      case 'o': {
        const o = addOptionList(img, options, r.optarg!);
        if (o === null) return 1;
        options = o;
        break;
      }
      case 'u':
        noBacking = true;
        break;
    }
  }

  const fmt = args.fmt ?? 'raw';
  const rest = g.operands();
  const filename = rest[0];
  if (options !== undefined && hasHelpOption(options)) return printBlockOptionHelp(img, filename, fmt);
  if (filename === undefined) img.errorExit('Expecting image file name');

  let size = -1n;
  if (rest.length > 1) {
    const r = imgCvtnum('image size', rest[1]!);
    if (!r.ok) {
      for (const m of r.messages) img.error(m);
      return 1;
    }
    if (r.warning) img.warn(r.warning);
    size = r.value;
  }
  if (rest.length > 2) img.errorExit(`Unexpected argument: ${rest[2]}`);

  try {
    const req: Parameters<typeof bdrvImgCreate>[1] = {
      filename,
      fmt,
      size,
      noBacking,
      quiet: img.quiet,
      formatting: (line) => {
        img.print(line);
        img.flush();
      },
      openBacking: (fullPath, backingFmt) => openBackingForCreate(img, fullPath, backingFmt),
    };
    if (baseFilename !== undefined) req.baseFilename = baseFilename;
    if (baseFmt !== undefined) req.baseFmt = baseFmt;
    if (options !== undefined) req.options = options;
    bdrvImgCreate(img.createEnv(), req);
  } catch (err) {
    img.reportErr(err, `${filename}: `);
    return 1;
  }
  return 0;
}

/** bdrv_img_create's backing open: read-only, shared, no backing of its own needed. */
function openBackingForCreate(img: Img, fullPath: string, fmt: string | undefined): BackingProbe {
  const req: ImgOpenRequest = { imageOpts: false, filename: fullPath, readOnly: true, writethrough: false, forceShare: true, noBacking: true };
  if (fmt !== undefined) req.fmt = fmt;
  let blk;
  try {
    blk = openImgBackend(img, req);
  } catch (err) {
    // bdrv_img_create reports the open error without "Could not open 'X': ".
    if (err instanceof ImgOpenFailure) throw new QemuError(err.message, err.hint);
    throw err;
  }
  try {
    return { format: blk.root.driver, size: blk.length() };
  } catch (err) {
    throw new QemuError(errorMessage(err));
  } finally {
    blk.close();
  }
}
