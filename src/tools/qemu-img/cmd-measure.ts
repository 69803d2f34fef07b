/**
 * qemu-img measure: the size a new image would need, from --size or from an input image
 * (qcow2_measure and raw_measure formulas, QEMU's option checks and messages).
 */
import type { BlockBackend } from '../../block/backend.ts';
import { CreateOptions, NON_CREATING_DRIVERS, QemuError, UNIMPLEMENTED_CREATING_FORMATS, appendDescs, createOptsFor, isValidOptionList, protocolCreateOpts } from '../../block/create-opts.ts';
import { ImageArgs, OPTION_OUTPUT, OPTION_SIZE, imgOpen, statusAbove, LONG_HELP, LONG_OUTPUT, LONG_OBJECT, LONG_IMAGE_OPTS, LONG_FORCE_SHARE } from './common.ts';
import { qcow2Of } from './engine.ts';
import { luksPayloadOffset } from '../../block/crypto.ts';
import type { SecretStore } from '../../block/secrets.ts';
import { measureQcow2, type MeasureInput, type Qcow2MeasureOptions } from '../../qcow2/index.ts';
import { formatMeasure, type MeasureInfo } from './format.ts';
import { errorMessage, type Img } from './img.ts';
import { imgCvtnum } from '../common/numbers.ts';
import { HELP_BODY, VERSION_TEXT } from './help.ts';
import { ImgExit } from './img.ts';
import { loadSnapshotArg, parseSnapshotArg, type SnapshotArg } from './snapshot-arg.ts';

/** qcow2_measure's option handling in QEMU's order; the formulas are the engine's. */
function qcow2Measure(opts: CreateOptions, input: BlockBackend | undefined, secrets: SecretStore): MeasureInfo {
  const extendedL2 = opts.getBool('extended_l2', false);
  const clusterSize = Number(opts.getSize('cluster_size', 65536n));
  const bits = Math.log2(clusterSize);
  if (!Number.isInteger(bits) || bits < 9 || bits > 21) {
    throw new QemuError('Cluster size must be a power of two between 512 and 2048k');
  }
  if (extendedL2 && clusterSize < 16384) {
    throw new QemuError('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes');
  }
  let compat: '0.10' | '1.1' = '1.1';
  if (opts.isSet('compat')) {
    const c = opts.get('compat')!;
    if (c !== '0.10' && c !== '1.1') throw new QemuError(`Invalid compatibility level: '${c}'`);
    compat = c;
  }
  const refcountBits = Number(opts.getNumber('refcount_bits', 16n));
  if (refcountBits > 64 || refcountBits <= 0 || (refcountBits & (refcountBits - 1)) !== 0) {
    throw new QemuError('Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (compat === '0.10' && refcountBits !== 16) {
    throw new QemuError('Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)');
  }
  const prealloc = opts.isSet('preallocation') ? opts.get('preallocation')! : 'off';
  if (!PREALLOC_MODES.includes(prealloc)) throw new QemuError(`invalid parameter value: ${prealloc}`);
  let luksPayload = 0;
  if (opts.isSet('encrypt.format') && opts.get('encrypt.format') === 'luks') {
    const headerLength = luksPayloadOffset(encryptOptions(opts), 'encrypt.', secrets);
    luksPayload = Math.ceil(headerLength / clusterSize) * clusterSize;
  }
  const o: Qcow2MeasureOptions = {
    size: Number(opts.getSize('size', 0n)),
    clusterSize,
    compat,
    refcountBits,
    preallocation: prealloc as Qcow2MeasureOptions['preallocation'],
    extendedL2,
  };
  if (opts.isSet('backing_file')) o.backingFile = opts.get('backing_file')!;
  let measureInput: MeasureInput | undefined;
  if (input) {
    measureInput = {
      length: input.length(),
      blockStatus: (offset, length) => statusAbove(input.root, offset, length),
    };
    const bitmaps = bitmapsSize(input, clusterSize);
    if (bitmaps !== undefined) measureInput.bitmapsSize = bitmaps;
  }
  let r;
  try {
    r = measureQcow2(o, measureInput);
  } catch (err) {
    throw new QemuError(errorMessage(err));
  }
  const info: MeasureInfo = { required: r.required + luksPayload, fullyAllocated: r.fullyAllocated + luksPayload };
  if (r.bitmaps !== undefined) info.bitmaps = r.bitmaps;
  return info;
}

const PREALLOC_MODES = ['off', 'metadata', 'falloc', 'full'];

/** The encrypt.* options as the crypto layer names them (qcow2_extract_crypto_opts). */
function encryptOptions(opts: CreateOptions): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of opts.descs) {
    if (!d.name.startsWith('encrypt.') || d.name === 'encrypt.format' || !opts.isSet(d.name)) continue;
    out.set(d.name.slice('encrypt.'.length), opts.get(d.name)!);
  }
  return out;
}

/**
 * qcow2_get_persistent_dirty_bitmap_size for a qcow2 input (whose persistent bitmaps could be
 * copied); undefined when the input cannot carry bitmaps.
 */
function bitmapsSize(input: BlockBackend, clusterSize: number): number | undefined {
  const q = qcow2Of(input.root);
  if (!q || q.header.version < 3) return undefined;
  let size = 0;
  let dirSize = 0;
  for (const b of q.listBitmaps()) {
    if (b.inUse) continue;
    const bytes = Math.ceil(Math.ceil(input.length() / b.granularity) / 8);
    const clusters = Math.ceil(bytes / clusterSize);
    size += clusters * clusterSize;
    size += Math.ceil((clusters * 8) / clusterSize) * clusterSize;
    dirSize += Math.ceil((24 + new TextEncoder().encode(b.name).length) / 8) * 8;
  }
  return size + Math.ceil(dirSize / clusterSize) * clusterSize;
}

/** raw_measure: the input's length (or the size), whatever the options say. */
function rawMeasure(opts: CreateOptions, input: BlockBackend | undefined): MeasureInfo {
  const required = input ? input.length() : Math.ceil(Number(opts.getSize('size', 0n)) / 512) * 512;
  return { required, fullyAllocated: required };
}

export function imgMeasure(img: Img, argv: string[]): number {
  let output: 'human' | 'json' = 'human';
  let outFmt = 'raw';
  let options: string | undefined;
  let snapshot: SnapshotArg | undefined;
  const args = new ImageArgs();
  let imgSize: bigint | undefined;

  // measure's option string has no leading ':', so getopt prints its own diagnostics.
  const g = img.getopt(argv, 'hf:O:o:l:U', [
    LONG_HELP,
    LONG_IMAGE_OPTS,
    LONG_OBJECT,
    LONG_OUTPUT,
    { name: 'size', hasArg: true, val: OPTION_SIZE },
    LONG_FORCE_SHARE,
  ]);
  for (;;) {
    const r = g.next();
    if (r.kind === 'end') break;
    if (r.kind !== 'option' || r.opt === 'h') {
      img.print(VERSION_TEXT + HELP_BODY);
      throw new ImgExit(0);
    }
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'O':
        outFmt = r.optarg!;
        break;
      case 'o':
        if (!isValidOptionList(r.optarg!)) {
          img.error(`Invalid option list: ${r.optarg}`);
          return 1;
        }
        options = options === undefined ? r.optarg! : `${options},${r.optarg}`;
        break;
      case 'l': {
        const arg = parseSnapshotArg(img, r.optarg!);
        if (!arg) return 1;
        snapshot = arg;
        break;
      }
      case OPTION_OUTPUT:
        if (r.optarg === 'json') output = 'json';
        else if (r.optarg === 'human') output = 'human';
        else {
          img.error('--output must be used with human or json as argument.');
          return 1;
        }
        break;
      case OPTION_SIZE: {
        const c = imgCvtnum('image size', r.optarg!);
        if (!c.ok) {
          for (const m of c.messages) img.error(m);
          return 1;
        }
        if (c.warning) img.warn(c.warning);
        imgSize = c.value;
        break;
      }
    }
  }
  const rest = g.operands();
  if (rest.length > 1) {
    img.error('At most one filename argument is allowed.');
    return 1;
  }
  const filename = rest[0];
  if (filename === undefined && (args.imageOpts || args.fmt !== undefined || snapshot !== undefined)) {
    img.error('--image-opts, -f, and -l require a filename argument.');
    return 1;
  }
  if (filename !== undefined && imgSize !== undefined) {
    img.error('--size N cannot be used together with a filename.');
    return 1;
  }
  if (filename === undefined && imgSize === undefined) {
    img.error('Either --size N or one filename must be specified.');
    return 1;
  }

  let input: BlockBackend | undefined;
  try {
    if (filename !== undefined) {
      const req = args.request(filename, { readOnly: true, writethrough: false });
      const blk = imgOpen(img, req);
      if (!blk) return 1;
      input = blk;
      if (snapshot && !loadSnapshotArg(img, blk, snapshot)) return 1;
    }
    const descs = createOptsFor(outFmt);
    if (!descs || outFmt === 'file') {
      if (NON_CREATING_DRIVERS.has(outFmt) || UNIMPLEMENTED_CREATING_FORMATS.has(outFmt) || outFmt === 'file') {
        img.error(`Format driver '${outFmt}' does not support image creation`);
      } else {
        img.error(`Unknown file format '${outFmt}'`);
      }
      return 1;
    }
    const opts = new CreateOptions(appendDescs(descs, protocolCreateOpts()));
    opts.warn = (m) => img.warn(m);
    if (options !== undefined) {
      try {
        opts.parse(options);
      } catch (err) {
        img.reportErr(err);
        img.error(`Invalid options for file format '${outFmt}'`);
        return 1;
      }
    }
    if (imgSize !== undefined) opts.setNumber('size', imgSize);
    let info: MeasureInfo;
    try {
      info = outFmt === 'qcow2' ? qcow2Measure(opts, input, img.secrets) : rawMeasure(opts, input);
    } catch (err) {
      img.reportErr(err instanceof QemuError ? err : new QemuError(errorMessage(err)));
      return 1;
    }
    img.print(formatMeasure(output, info));
    return 0;
  } finally {
    input?.close();
  }
}
