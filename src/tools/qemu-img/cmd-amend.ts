/**
 * qemu-img amend: parse -o against the format's amend options (falling back to its create
 * options only to word the error), then hand the changes to the engine.
 */
import { CreateOptions, appendDescs, createOptsFor, formatOptionHelp, hasHelpOption, type OptDesc } from '../../block/create-opts.ts';
import { BDRV_DEFAULT_CACHE, OPTION_FORCE, imgOpen, ImageArgs, LONG_HELP, LONG_OBJECT, LONG_IMAGE_OPTS, cacheOption } from './common.ts';
import { amendImage } from './engine.ts';
import { addOptionList } from './cmd-create.ts';
import { errorMessage, type Img } from './img.ts';
import { Progress } from './progress.ts';
import { QemuError } from '../../block/create-opts.ts';

/** qcow2_amend_opts (the create options that can change, plus LUKS keyslot management). */
const qcow2AmendDescs: OptDesc[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'compat', type: 'string', help: 'Compatibility level (v2 [0.10] or v3 [1.1])' },
  { name: 'backing_file', type: 'string', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'string', help: 'Image format of the base image' },
  { name: 'data_file', type: 'string', help: 'File name of an external data file' },
  { name: 'data_file_raw', type: 'bool', help: 'The external data file must stay valid as a raw image' },
  { name: 'lazy_refcounts', type: 'bool', help: 'Postpone refcount updates' },
  { name: 'refcount_bits', type: 'number', help: 'Width of a reference count entry in bits' },
  { name: 'encrypt.state', type: 'string', help: 'Select new state of affected keyslots (active/inactive)' },
  { name: 'encrypt.new-secret', type: 'string', help: 'New secret to set in the matching keyslots. Empty string to erase' },
  { name: 'encrypt.old-secret', type: 'string', help: 'Select all keyslots that match this password' },
  { name: 'encrypt.keyslot', type: 'number', help: 'Select a single keyslot to modify explicitly' },
  { name: 'encrypt.iter-time', type: 'number', help: 'Time to spend in PBKDF in milliseconds' },
];

function amendDescsFor(format: string): OptDesc[] | undefined {
  return format === 'qcow2' ? qcow2AmendDescs : undefined;
}

/** print_amend_option_help */
function printAmendOptionHelp(img: Img, format: string): number {
  const descs = amendDescsFor(format);
  if (!descs) {
    if (createOptsFor(format) === undefined && !['file', 'raw', 'blkdebug', 'null-co'].includes(format)) {
      img.error(`Unknown file format '${format}'`);
    } else {
      img.error(`Format driver '${format}' does not support option amendment`);
    }
    return 1;
  }
  img.print(`Amend options for '${format}':\n`);
  img.print(formatOptionHelp(descs));
  return 0;
}

export function imgAmend(img: Img, argv: string[]): number {
  const args = new ImageArgs();
  let options: string | undefined;
  let cache = BDRV_DEFAULT_CACHE;
  let force = false;
  let showProgress = false;

  const g = img.getopt(argv, ':ho:f:t:pq', [
    LONG_HELP,
    LONG_OBJECT,
    LONG_IMAGE_OPTS,
    { name: 'force', hasArg: false, val: OPTION_FORCE },
  ]);
  for (let r = img.nextOption(g); r; r = img.nextOption(g)) {
    if (args.take(img, r)) continue;
    switch (r.opt) {
      case 'o': {
        const o = addOptionList(img, options, r.optarg!);
        if (o === null) return 1;
        options = o;
        break;
      }
      case 't':
        cache = r.optarg!;
        break;
      case 'p':
        showProgress = true;
        break;
      case OPTION_FORCE:
        force = true;
        break;
    }
  }
  void force;
  if (options === undefined) img.errorExit('Must specify options (-o)');
  const progress = new Progress(img, showProgress && !img.quiet, 1.0);
  try {
    return amendFile(img, g.operands(), options, args, cache, progress);
  } finally {
    progress.end();
  }
}

function amendFile(img: Img, rest: string[], options: string, args: ImageArgs, cache: string, progress: Progress): number {
  if (args.fmt !== undefined && hasHelpOption(options)) return printAmendOptionHelp(img, args.fmt);
  if (rest.length !== 1) {
    img.error('Expecting one image file name');
    return 1;
  }
  const filename = rest[0]!;
  const cs = cacheOption(img, cache);
  if (!cs) return 1;
  const req = args.request(filename, { readOnly: false, writethrough: cs.writethrough, cache: cs });
  const blk = imgOpen(img, req);
  if (!blk) return 1;
  try {
    const format = blk.root.driver;
    if (hasHelpOption(options)) return printAmendOptionHelp(img, format);
    const descs = amendDescsFor(format);
    if (!descs) {
      img.error(`Format driver '${format}' does not support option amendment`);
      return 1;
    }
    const opts = new CreateOptions(descs);
    opts.warn = (m) => img.warn(m);
    try {
      opts.parse(options);
    } catch (err) {
      // Name options that only exist for creation, as QEMU does.
      const all = new CreateOptions(appendDescs(descs, createOptsFor(format) ?? []));
      let creationOnly = false;
      try {
        all.parse(options);
        creationOnly = true;
      } catch {
        creationOnly = false;
      }
      const message = errorMessage(err);
      const hint = [err instanceof QemuError && err.hint ? err.hint : '', creationOnly ? 'This option is only supported for image creation\n' : ''].join('');
      img.reportErr(new QemuError(message, hint || undefined));
      return 1;
    }
    const changes = new Map<string, string | boolean | bigint>();
    for (const name of opts.setNames()) {
      const d = opts.desc(name)!;
      if (d.type === 'bool') changes.set(name, opts.getBool(name, false));
      else if (d.type === 'number' || d.type === 'size') changes.set(name, opts.getSize(name, 0n));
      else changes.set(name, opts.get(name)!);
    }
    // In case the driver does not report progress itself.
    progress.print(0, 0);
    let failure: unknown;
    try {
      // amend_status_cb: 100.f * offset / total_work_size, in single precision.
      const f = Math.fround;
      amendImage(
        blk.root,
        changes,
        (done, total) => progress.print(f(f(100 * f(done)) / f(total)), 0),
        (message) => img.error(message),
      );
    } catch (err) {
      failure = err;
    }
    progress.print(100, 0);
    if (failure !== undefined) {
      img.reportErr(failure);
      return 1;
    }
    return 0;
  } finally {
    blk.close();
  }
}
