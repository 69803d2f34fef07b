/**
 * What the qemu-img subcommands share: img_open (with --image-opts, -U and the cache modes),
 * --object handling, --output parsing, and block status over a backing chain
 * (bdrv_block_status / bdrv_block_status_above).
 */
import { BlockBackend } from '../../block/backend.ts';
import { BlockOpenError, OptionsError } from '../../block/errors.ts';
import { openImage, parseCacheMode, type CacheSettings } from '../../block/open.ts';
import { SizeOptionError, parseOptsString } from '../../block/options.ts';
import { QDict } from '../../block/qdict.ts';
import type { BlockNode, BlockStatus } from '../../block/types.ts';
import { ErrnoError } from '../../errno.ts';
import { defineObject } from '../common/objects.ts';
import { ImgExit, errorMessage, type Img } from './img.ts';
import type { LongOption } from '../common/getopt.ts';

export const OPTION_OUTPUT = 256;
export const OPTION_BACKING_CHAIN = 257;
export const OPTION_OBJECT = 258;
export const OPTION_IMAGE_OPTS = 259;
export const OPTION_PATTERN = 260;
export const OPTION_FLUSH_INTERVAL = 261;
export const OPTION_NO_DRAIN = 262;
export const OPTION_TARGET_IMAGE_OPTS = 263;
export const OPTION_SIZE = 264;
export const OPTION_PREALLOCATION = 265;
export const OPTION_SHRINK = 266;
export const OPTION_SALVAGE = 267;
export const OPTION_TARGET_IS_ZERO = 268;
export const OPTION_ADD = 269;
export const OPTION_REMOVE = 270;
export const OPTION_CLEAR = 271;
export const OPTION_ENABLE = 272;
export const OPTION_DISABLE = 273;
export const OPTION_MERGE = 274;
export const OPTION_BITMAPS = 275;
export const OPTION_FORCE = 276;
export const OPTION_SKIP_BROKEN = 277;

/** qemu-img's default cache mode (writeback) unless a command says otherwise. */
export const BDRV_DEFAULT_CACHE = 'writeback';

export type OutputFormat = 'human' | 'json';

/** The --output check every command shares; returns null after reporting a bad value. */
export function parseOutput(img: Img, output: string | undefined): OutputFormat | null {
  if (output === undefined || output === 'human') return 'human';
  if (output === 'json') return 'json';
  img.error('--output must be used with human or json as argument.');
  return null;
}

/** Long options several subcommands share (getopt_long entries, in each command's order). */
export const LONG_HELP: LongOption = { name: 'help', hasArg: false, val: 'h' };
export const LONG_FORMAT: LongOption = { name: 'format', hasArg: true, val: 'f' };
export const LONG_OUTPUT: LongOption = { name: 'output', hasArg: true, val: OPTION_OUTPUT };
export const LONG_OBJECT: LongOption = { name: 'object', hasArg: true, val: OPTION_OBJECT };
export const LONG_IMAGE_OPTS: LongOption = { name: 'image-opts', hasArg: false, val: OPTION_IMAGE_OPTS };
export const LONG_FORCE_SHARE: LongOption = { name: 'force-share', hasArg: false, val: 'U' };

/**
 * The options that mean the same in every subcommand taking them: -f FMT, --image-opts,
 * -U/--force-share, --object and -q. A command offers them in its option string; take()
 * consumes them, so the command's own switch sees only its own options.
 */
export class ImageArgs {
  fmt: string | undefined;
  imageOpts = false;
  forceShare = false;

  /** Apply a shared option; false when the option is the command's own. */
  take(img: Img, r: { opt: string | number; optarg?: string | undefined }): boolean {
    switch (r.opt) {
      case 'f':
        this.fmt = r.optarg!;
        return true;
      case 'q':
        img.quiet = true;
        return true;
      case 'U':
        this.forceShare = true;
        return true;
      case OPTION_OBJECT:
        // Created while parsing, as QEMU does (user_creatable_process_cmdline, error_fatal).
        try {
          defineObject(img.secrets, r.optarg!, img.ctx);
        } catch (err) {
          img.error(errorMessage(err));
          throw new ImgExit(1);
        }
        return true;
      case OPTION_IMAGE_OPTS:
        this.imageOpts = true;
        return true;
      default:
        return false;
    }
  }

  /** An img_open request for `filename` with these options. */
  request(filename: string, fields: Omit<ImgOpenRequest, 'imageOpts' | 'filename' | 'forceShare' | 'fmt'>): ImgOpenRequest {
    const req: ImgOpenRequest = { ...fields, imageOpts: this.imageOpts, filename, forceShare: this.forceShare };
    if (this.fmt !== undefined) req.fmt = this.fmt;
    return req;
  }
}

/** bdrv_parse_cache_mode for a -t/-T argument; null after "Invalid <what>cache option: X". */
export function cacheOption(img: Img, mode: string, what = ''): CacheSettings | null {
  const cs = parseCacheMode(mode);
  if (!cs) img.error(`Invalid ${what}cache option: ${mode}`);
  return cs ?? null;
}

export interface ImgOpenRequest {
  imageOpts: boolean;
  filename: string;
  fmt?: string;
  readOnly: boolean;
  writethrough: boolean;
  cache?: CacheSettings;
  forceShare: boolean;
  noBacking?: boolean;
  /** Extra options for the root node (convert's key secrets, unmap). */
  options?: QDict;
  unmap?: boolean;
  /** BDRV_O_NO_IO: header-only open (info), e.g. a missing data file is no error. */
  noIo?: boolean;
  /** BDRV_O_CHECK: qemu-img check opens damaged images. */
  check?: boolean;
}

/** The open error's text as qemu-img prints it after "Could not open 'X': ". */
function openErrorText(err: unknown): string {
  if (err instanceof BlockOpenError || err instanceof OptionsError || err instanceof ErrnoError) return err.message;
  return errorMessage(err);
}

/** Why an image could not be opened: QEMU's Error text (without "Could not open 'X': "). */
export class ImgOpenFailure extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'ImgOpenFailure';
    this.hint = hint;
  }
}

/**
 * img_open: returns the BlockBackend, or null after printing QEMU's error. The backend is
 * writethrough or not as -t says (qemu-img opens with the cache mode's write-cache flag).
 */
export function imgOpen(img: Img, req: ImgOpenRequest): BlockBackend | null {
  if (req.imageOpts && req.fmt !== undefined) {
    img.error('--image-opts and --format are mutually exclusive');
    return null;
  }
  let options: QDict;
  try {
    options = imgOpenOptions(req);
  } catch (err) {
    img.error(errorMessage(err));
    return null;
  }
  try {
    return openImgBackend(img, req, options);
  } catch (err) {
    if (!(err instanceof ImgOpenFailure)) throw err;
    // error_reportf_err: the message, then the Error's hint (size options explain suffixes).
    img.error(`Could not open '${req.filename}': ${err.message}`);
    if (err.hint) img.ctx.out.stderr(err.hint);
    return null;
  }
}

/**
 * The open itself (blk_new_open with qemu-img's flags) for callers that word the failure
 * themselves (bdrv_img_create's backing probe, rebase's new backing file). Throws
 * ImgOpenFailure; probing warnings still go to stderr.
 */
export function openImgBackend(img: Img, req: ImgOpenRequest, options: QDict = imgOpenOptions(req)): BlockBackend {
  const cache = req.cache ?? { direct: false, noFlush: false, writethrough: req.writethrough };
  const openReq: Parameters<typeof openImage>[0] = {
    options,
    readOnly: req.readOnly,
    cache: { ...cache, writethrough: req.writethrough },
    forceShare: req.forceShare,
    noBacking: req.noBacking ?? false,
    unmap: req.unmap ?? false,
  };
  if (!req.imageOpts) openReq.filename = req.filename;
  if (req.noIo) openReq.noIo = true;
  if (req.check) openReq.check = true;
  if (req.fmt !== undefined) openReq.format = req.fmt;
  try {
    return openImage(openReq, {
      cwd: img.ctx.cwd,
      pathPolicy: img.ctx.pathPolicy,
      stderr: (t) => img.ctx.out.stderr(t),
      warn: (m) => img.warn(m),
    });
  } catch (err) {
    throw new ImgOpenFailure(openErrorText(err), err instanceof SizeOptionError || err instanceof BlockOpenError ? err.hint : undefined);
  }
}

/** The options of an --image-opts argument (plus the request's own); throws OptionsError. */
function imgOpenOptions(req: ImgOpenRequest): QDict {
  let options = req.options ?? new QDict();
  if (!req.imageOpts) return options;
  const parsed = parseOptsString(req.filename, { impliedName: 'file', mergeLists: false });
  for (const [k, v] of options) parsed.set(k, v);
  options = parsed;
  if (req.forceShare) {
    const fs = options.get('force-share');
    if (fs !== undefined && fs !== 'on') throw new OptionsError('--force-share/-U conflicts with image options');
  }
  return options;
}

/** bdrv_parse_cache_mode with qemu-img's flags: returns settings or null. */
export function cacheMode(mode: string): CacheSettings | null {
  return parseCacheMode(mode) ?? null;
}

// ---------------------------------------------------------------- block status

export function backingOf(node: BlockNode): BlockNode | undefined {
  return node.children.get('backing');
}

/**
 * bdrv_block_status for one node, with the generic layer's rule for unallocated ranges of
 * formats that support backing files: zero when there is no backing file, or past its end.
 */
export function nodeStatus(node: BlockNode, offset: number, bytes: number): BlockStatus {
  const s = node.blockStatus(offset, bytes);
  if (!s.data && !s.zero && !s.allocated) {
    const backing = backingOf(node);
    if (!backing || offset >= backing.length()) return { ...s, zero: true };
  }
  return s;
}

/**
 * bdrv_block_status_above(bs, NULL): the status of the first layer that describes the range,
 * the length cut to what is uniform in every layer looked at. `allocated` reports
 * BDRV_BLOCK_ALLOCATED.
 */
export function statusAbove(top: BlockNode, offset: number, bytes: number): BlockStatus & { depth: number } {
  let node: BlockNode | undefined = top;
  let length = bytes;
  let depth = 0;
  let last: BlockStatus | undefined;
  while (node) {
    if (offset >= node.length()) {
      // A short backing layer: zeroes past its end count as allocated here.
      return { length, allocated: true, data: false, zero: true, compressed: false, depth };
    }
    const s = nodeStatus(node, offset, length);
    depth++;
    last = s;
    if (s.allocated) return { ...s, depth };
    length = s.length;
    node = backingOf(node);
  }
  return { ...last!, length, depth };
}
