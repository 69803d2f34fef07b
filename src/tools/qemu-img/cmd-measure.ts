/**
 * qemu-img measure: the size a new image would need, from --size or from an input image
 * (qcow2_measure and raw_measure formulas, QEMU's option checks and messages).
 */
import type { BlockBackend } from '../../block/backend.ts';
import { CreateOptions, NON_CREATING_DRIVERS, QemuError, UNIMPLEMENTED_CREATING_FORMATS, appendDescs, createOptsFor, isValidOptionList, protocolCreateOpts } from '../../block/create-opts.ts';
import { OPTION_IMAGE_OPTS, OPTION_OBJECT, OPTION_OUTPUT, OPTION_SIZE, ObjectList, imgOpen, statusAbove } from './common.ts';
import { qcow2Of } from './engine.ts';
import { formatMeasure, type MeasureInfo } from './format.ts';
import { errorMessage, type Img } from './img.ts';
import { cvtnum } from './numbers.ts';
import { HELP_BODY, VERSION_TEXT } from './help.ts';
import { ImgExit } from './img.ts';

const QCOW_MAX_L1_SIZE = 32 * 1024 * 1024;

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** qcow2_refcount_metadata_size: the fixed point of refcount blocks and table clusters. */
function refcountMetadataSize(clusters: number, clusterSize: number, refcountOrder: number): number {
  const blocksPerTableCluster = clusterSize / 8;
  const refcountsPerBlock = (clusterSize * 8) / 2 ** refcountOrder;
  let table = 0;
  let blocks = 0;
  let n = 0;
  let last: number;
  do {
    last = n;
    blocks = Math.ceil((clusters + table + blocks) / refcountsPerBlock);
    table = Math.ceil(blocks / blocksPerTableCluster);
    n = clusters + blocks + table;
  } while (n !== last);
  return (blocks + table) * clusterSize;
}

/** qcow2_calc_prealloc_size */
export function qcow2PreallocSize(totalSize: number, clusterSize: number, refcountOrder: number, extendedL2: boolean): number {
  const l2eSize = extendedL2 ? 16 : 8;
  const aligned = roundUp(totalSize, clusterSize);
  let meta = clusterSize;
  let nl2e = aligned / clusterSize;
  nl2e = roundUp(nl2e, clusterSize / l2eSize);
  meta += nl2e * l2eSize;
  let nl1e = (nl2e * l2eSize) / clusterSize;
  nl1e = roundUp(nl1e, clusterSize / 8);
  meta += nl1e * 8;
  meta += refcountMetadataSize((meta + aligned) / clusterSize, clusterSize, refcountOrder);
  return meta + aligned;
}

function qcow2Measure(opts: CreateOptions, input: BlockBackend | undefined): MeasureInfo {
  const extendedL2 = opts.getBool('extended_l2', false);
  const clusterSize = Number(opts.getSize('cluster_size', 65536n));
  const bits = Math.log2(clusterSize);
  if (!Number.isInteger(bits) || bits < 9 || bits > 21) {
    throw new QemuError('Cluster size must be a power of two between 512 and 2048k');
  }
  if (extendedL2 && clusterSize < 16384) {
    throw new QemuError('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes');
  }
  const compat = opts.isSet('compat') ? opts.get('compat')! : undefined;
  let version = 3;
  if (compat !== undefined) {
    if (compat === '0.10' || compat === 'v2') version = 2;
    else if (compat === '1.1' || compat === 'v3') version = 3;
    else throw new QemuError(`Invalid compatibility level: '${compat}'`);
  }
  const refcountBits = Number(opts.getNumber('refcount_bits', 16n));
  if (refcountBits > 64 || refcountBits <= 0 || (refcountBits & (refcountBits - 1)) !== 0) {
    throw new QemuError('Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (version < 3 && refcountBits !== 16) {
    throw new QemuError('Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)');
  }
  const prealloc = opts.isSet('preallocation') ? opts.get('preallocation')! : 'off';
  if (!['off', 'metadata', 'falloc', 'full'].includes(prealloc)) throw new QemuError(`invalid parameter value: ${prealloc}`);
  const hasBacking = opts.isSet('backing_file');
  const encryptFormat = opts.isSet('encrypt.format') ? opts.get('encrypt.format') : undefined;
  if (encryptFormat === 'luks') throw new QemuError("Parameter 'encrypt.key-secret' is required for cipher");

  let virtualSize = roundUp(Number(opts.getSize('size', 0n)), clusterSize);
  const l2eSize = extendedL2 ? 16 : 8;
  const l2Tables = Math.ceil(virtualSize / clusterSize / (clusterSize / l2eSize));
  if (l2Tables * 8 > QCOW_MAX_L1_SIZE) throw new QemuError('The image size is too large (try using a larger cluster size)');

  let required = 0;
  if (input) {
    const ssize = input.length();
    virtualSize = roundUp(ssize, clusterSize);
    if (hasBacking) {
      required = virtualSize;
    } else {
      let pnum = 0;
      for (let offset = 0; offset < ssize; offset += pnum) {
        const st = statusAbove(input.root, offset, ssize - offset);
        pnum = st.length;
        if (st.zero) {
          // Zero regions need no clusters (safe without a backing file).
        } else if (st.data && st.allocated) {
          pnum = roundUp(offset + pnum, clusterSize) - offset;
          required += (offset % clusterSize) + pnum;
        }
      }
    }
  }
  if (prealloc === 'full' || prealloc === 'falloc') required = virtualSize;
  const fullyAllocated = qcow2PreallocSize(virtualSize, clusterSize, Math.log2(refcountBits), extendedL2);
  const info: MeasureInfo = { required: fullyAllocated - virtualSize + required, fullyAllocated };
  if (version >= 3 && input && qcow2Of(input.root)) info.bitmaps = 0;
  return info;
}

function rawMeasure(opts: CreateOptions, input: BlockBackend | undefined): MeasureInfo {
  const required = input ? input.length() : roundUp(Number(opts.getSize('size', 0n)), 512);
  const prealloc = opts.isSet('preallocation') ? opts.get('preallocation')! : 'off';
  if (!['off', 'falloc', 'full'].includes(prealloc)) throw new QemuError(`invalid parameter value: ${prealloc}`);
  return { required, fullyAllocated: required };
}

export function imgMeasure(img: Img, argv: string[]): number {
  let output: 'human' | 'json' = 'human';
  let fmt: string | undefined;
  let outFmt = 'raw';
  let options: string | undefined;
  let snapshot = false;
  let imageOpts = false;
  let objectGiven = false;
  let forceShare = false;
  let imgSize: bigint | undefined;
  const objects = new ObjectList();

  // measure's option string has no leading ':', so getopt prints its own diagnostics.
  const g = img.getopt(argv, 'hf:O:o:l:U', [
    { name: 'help', hasArg: false, val: 'h' },
    { name: 'image-opts', hasArg: false, val: OPTION_IMAGE_OPTS },
    { name: 'object', hasArg: true, val: OPTION_OBJECT },
    { name: 'output', hasArg: true, val: OPTION_OUTPUT },
    { name: 'size', hasArg: true, val: OPTION_SIZE },
    { name: 'force-share', hasArg: false, val: 'U' },
  ]);
  for (;;) {
    const r = g.next();
    if (r.kind === 'end') break;
    if (r.kind !== 'option' || r.opt === 'h') {
      img.print(VERSION_TEXT + HELP_BODY);
      throw new ImgExit(0);
    }
    switch (r.opt) {
      case 'f':
        fmt = r.optarg!;
        break;
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
      case 'l':
        snapshot = true;
        break;
      case 'U':
        forceShare = true;
        break;
      case OPTION_OBJECT:
        objectGiven = true;
        if (!objects.add(img, r.optarg!)) return 1;
        break;
      case OPTION_IMAGE_OPTS:
        imageOpts = true;
        break;
      case OPTION_OUTPUT:
        if (r.optarg === 'json') output = 'json';
        else if (r.optarg === 'human') output = 'human';
        else {
          img.error('--output must be used with human or json as argument.');
          return 1;
        }
        break;
      case OPTION_SIZE: {
        const c = cvtnum('image size', r.optarg!);
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
  if (!objects.create(img)) return 1;
  const rest = g.operands();
  if (rest.length > 1) {
    img.error('At most one filename argument is allowed.');
    return 1;
  }
  const filename = rest[0];
  void objectGiven;
  if (filename === undefined && (imageOpts || fmt !== undefined || snapshot)) {
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
      const req: Parameters<typeof imgOpen>[1] = { imageOpts, filename, readOnly: true, writethrough: false, forceShare };
      if (fmt !== undefined) req.fmt = fmt;
      const blk = imgOpen(img, req);
      if (!blk) return 1;
      input = blk;
      if (snapshot) {
        img.error("Failed to load snapshot: Can't find snapshot");
        return 1;
      }
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
      info = outFmt === 'qcow2' ? qcow2Measure(opts, input) : rawMeasure(opts, input);
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
