/**
 * Creation options as QEMU's QemuOpts hold them for `qemu-img create/convert/amend -o`: typed
 * descriptors per driver, the `name=value,...` list syntax (`,,` escapes a comma, a bare `name`
 * means on, `noname` off), the value checks with QEMU's messages, the Formatting line printer
 * and the `-o help` listing.
 */
import { Errno } from '../errno.ts';
import { qemuStrtosz, qemuStrtou64 } from '../tools/common/numbers.ts';

export type OptType = 'string' | 'bool' | 'number' | 'size';

export interface OptDesc {
  name: string;
  type: OptType;
  help: string;
  /** def_value_str: printed on the Formatting line when the option is not set. */
  def?: string;
}

/** A QEMU Error: the message, plus the hint error_report_err prints on the following lines. */
export class QemuError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'QemuError';
    this.hint = hint;
  }
}

const qcow2Descs: OptDesc[] = [
  { name: 'encryption', type: 'bool', help: "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)" },
  { name: 'encrypt.format', type: 'string', help: "Encrypt the image, format choices: 'aes', 'luks'" },
  { name: 'encrypt.key-secret', type: 'string', help: 'ID of secret providing qcow AES key or LUKS passphrase' },
  { name: 'encrypt.cipher-alg', type: 'string', help: 'Name of encryption cipher algorithm' },
  { name: 'encrypt.cipher-mode', type: 'string', help: 'Name of encryption cipher mode' },
  { name: 'encrypt.ivgen-alg', type: 'string', help: 'Name of IV generator algorithm' },
  { name: 'encrypt.ivgen-hash-alg', type: 'string', help: 'Name of IV generator hash algorithm' },
  { name: 'encrypt.hash-alg', type: 'string', help: 'Name of encryption hash algorithm' },
  { name: 'encrypt.iter-time', type: 'number', help: 'Time to spend in PBKDF in milliseconds' },
  { name: 'cluster_size', type: 'size', help: 'qcow2 cluster size', def: '65536' },
  { name: 'extended_l2', type: 'bool', help: 'Extended L2 tables', def: 'off' },
  { name: 'preallocation', type: 'string', help: 'Preallocation mode (allowed values: off, metadata, falloc, full)' },
  { name: 'compression_type', type: 'string', help: 'Compression method used for image cluster compression', def: 'zlib' },
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'compat', type: 'string', help: 'Compatibility level (v2 [0.10] or v3 [1.1])' },
  { name: 'backing_file', type: 'string', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'string', help: 'Image format of the base image' },
  { name: 'data_file', type: 'string', help: 'File name of an external data file' },
  { name: 'data_file_raw', type: 'bool', help: 'The external data file must stay valid as a raw image' },
  { name: 'lazy_refcounts', type: 'bool', help: 'Postpone refcount updates', def: 'off' },
  { name: 'refcount_bits', type: 'number', help: 'Width of a reference count entry in bits', def: '16' },
];

const rawDescs: OptDesc[] = [{ name: 'size', type: 'size', help: 'Virtual disk size' }];

const fileDescs: OptDesc[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'nocow', type: 'bool', help: 'Turn off copy-on-write (valid only on btrfs)' },
  { name: 'preallocation', type: 'string', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'extent_size_hint', type: 'size', help: 'Extent size hint for the image file, 0 to disable' },
];

/** Format drivers that can create images, with their create_opts. */
const formatCreateOpts: Record<string, OptDesc[]> = {
  qcow2: qcow2Descs,
  raw: rawDescs,
  file: fileDescs,
};

/** Drivers QEMU knows but that cannot create images ("does not support image creation"). */
export const NON_CREATING_DRIVERS = new Set([
  'blkdebug', 'blklogwrites', 'blkverify', 'compress', 'copy-before-write', 'copy-on-read', 'null-aio', 'null-co',
  'preallocate', 'quorum', 'replication', 'snapshot-access', 'throttle', 'host_cdrom', 'host_device', 'bochs', 'cloop',
  'dmg', 'ftp', 'ftps', 'http', 'https', 'iscsi', 'iser', 'nbd', 'nfs', 'nvme', 'ssh', 'gluster', 'rbd', 'vvfat',
]);

/** Formats QEMU 7.2 creates that the built-in engine does not implement. */
export const UNIMPLEMENTED_CREATING_FORMATS = new Set(['luks', 'parallels', 'qcow', 'qed', 'vdi', 'vhdx', 'vmdk', 'vpc']);

export function createOptsFor(format: string): OptDesc[] | undefined {
  return formatCreateOpts[format];
}

/** The file protocol's options, appended to a format's list (duplicates keep the format's). */
export function protocolCreateOpts(): OptDesc[] {
  return fileDescs;
}

/** qemu_opts_append: later lists add only names not seen yet. */
export function appendDescs(...lists: OptDesc[][]): OptDesc[] {
  const out: OptDesc[] = [];
  const seen = new Set<string>();
  for (const list of lists) {
    for (const d of list) {
      if (seen.has(d.name)) continue;
      seen.add(d.name);
      out.push(d);
    }
  }
  return out;
}

interface OptValue {
  name: string;
  /** The text as given (opt->str). */
  str: string;
  /** Parsed value for bool/number/size options. */
  bool?: boolean;
  num?: bigint;
}

/** One QemuOpts instance over a descriptor list. */
export class CreateOptions {
  readonly descs: readonly OptDesc[];
  private values: OptValue[] = [];
  /** Where warn_report text goes (QEMU warns about deprecated hex-with-suffix sizes). */
  warn: (message: string) => void = () => {};

  constructor(descs: readonly OptDesc[]) {
    this.descs = descs;
  }

  desc(name: string): OptDesc | undefined {
    return this.descs.find((d) => d.name === name);
  }

  /** qemu_opts_do_parse: throws QemuError on the first bad element, keeping what came before. */
  parse(params: string): void {
    for (const { name, value } of splitOptionList(params)) {
      if (name === 'id') continue;
      this.set(name, value);
    }
  }

  /** qemu_opt_set; throws QemuError for an unknown name or a bad value. */
  set(name: string, str: string): void {
    const desc = this.desc(name);
    if (!desc) throw new QemuError(`Invalid parameter '${name}'`);
    this.values.push(parseValue(desc, str, this.warn));
  }

  /** qemu_opt_set_number: the text is the decimal value. */
  setNumber(name: string, value: bigint): void {
    const desc = this.desc(name);
    if (!desc) throw new QemuError(`Invalid parameter '${name}'`);
    this.values.push({ name, str: value.toString(), num: value });
  }

  /** The last value set for name (qemu_opt_find searches from the end). */
  private find(name: string): OptValue | undefined {
    for (let i = this.values.length - 1; i >= 0; i--) if (this.values[i]!.name === name) return this.values[i];
    return undefined;
  }

  isSet(name: string): boolean {
    return this.find(name) !== undefined;
  }

  /** qemu_opt_get: the set text, else the descriptor's default text. */
  get(name: string): string | undefined {
    return this.find(name)?.str ?? this.desc(name)?.def;
  }

  getBool(name: string, fallback: boolean): boolean {
    const v = this.find(name);
    if (v) return v.bool ?? fallback;
    const def = this.desc(name)?.def;
    return def !== undefined ? parseBoolText(def) ?? fallback : fallback;
  }

  getSize(name: string, fallback: bigint): bigint {
    const v = this.find(name);
    if (v) return v.num ?? fallback;
    const def = this.desc(name)?.def;
    if (def !== undefined) {
      const r = qemuStrtosz(def);
      if (r.ok) return r.value;
    }
    return fallback;
  }

  getNumber(name: string, fallback: bigint): bigint {
    return this.getSize(name, fallback);
  }

  unset(name: string): void {
    this.values = this.values.filter((v) => v.name !== name);
  }

  /** Names set explicitly, in the order first set. */
  setNames(): string[] {
    const out: string[] = [];
    for (const v of this.values) if (!out.includes(v.name)) out.push(v.name);
    return out;
  }

  /** qemu_opts_print(opts, " "): every option that is set or has a default, in list order. */
  print(): string {
    const parts: string[] = [];
    for (const desc of this.descs) {
      const opt = this.find(desc.name);
      const value = opt ? opt.str : desc.def;
      if (value === undefined) continue;
      if (desc.type === 'string') parts.push(`${desc.name}=${value.replaceAll(',', ',,')}`);
      else if ((desc.type === 'size' || desc.type === 'number') && opt && opt.num !== undefined) parts.push(`${desc.name}=${asInt64(opt.num)}`);
      else parts.push(`${desc.name}=${value}`);
    }
    return parts.join(' ');
  }
}

/** PRId64 of a uint64 value. */
function asInt64(v: bigint): string {
  return (v >= 1n << 63n ? v - (1n << 64n) : v).toString();
}

function parseBoolText(text: string): boolean | undefined {
  if (text === 'on' || text === 'yes' || text === 'true' || text === 'y') return true;
  if (text === 'off' || text === 'no' || text === 'false' || text === 'n') return false;
  return undefined;
}

function parseValue(desc: OptDesc, str: string, warn: (message: string) => void): OptValue {
  const name = desc.name;
  switch (desc.type) {
    case 'string':
      return { name, str };
    case 'bool': {
      const b = parseBoolText(str);
      if (b === undefined) throw new QemuError(`Parameter '${name}' expects 'on' or 'off'`);
      return { name, str, bool: b };
    }
    case 'number': {
      const r = qemuStrtou64(str, 0);
      if (!r.ok) {
        if (r.errno === 'ERANGE') throw new QemuError(`Value '${str}' is too large for parameter '${name}'`);
        throw new QemuError(`Parameter '${name}' expects a number`);
      }
      return { name, str, num: r.value };
    }
    case 'size': {
      const r = qemuStrtosz(str);
      if (!r.ok) {
        if (r.errno === Errno.ERANGE) throw new QemuError(`Value '${str}' is out of range for parameter '${name}'`);
        throw new QemuError(
          `Parameter '${name}' expects a non-negative number below 2^64`,
          'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.\n',
        );
      }
      if (r.warning !== undefined) warn(r.warning);
      return { name, str, num: r.value };
    }
  }
}

/** get_opt_value: text up to an unescaped comma, with `,,` unescaped; returns the end index. */
function readValue(params: string, start: number): { value: string; end: number } {
  let value = '';
  let i = start;
  while (i < params.length) {
    const ch = params[i]!;
    if (ch === ',') {
      if (params[i + 1] !== ',') break;
      i++;
    }
    value += ch;
    i++;
  }
  return { value, end: i };
}

/** The name=value elements of a QemuOpts list, flags expanded (`name` → on, `noname` → off). */
export function splitOptionList(params: string): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  let p = 0;
  while (p < params.length) {
    let len = 0;
    while (p + len < params.length && params[p + len] !== '=' && params[p + len] !== ',') len++;
    let name: string;
    let value: string;
    if (params[p + len] !== '=') {
      name = params.slice(p, p + len);
      p += len;
      if (name.startsWith('no')) {
        name = name.slice(2);
        value = 'off';
      } else {
        value = 'on';
      }
    } else {
      name = params.slice(p, p + len);
      const v = readValue(params, p + len + 1);
      value = v.value;
      p = v.end;
    }
    out.push({ name, value });
    if (params[p] === ',') p++;
  }
  return out;
}

/** is_valid_option_list: not empty, no leading comma, no unescaped trailing comma. */
export function isValidOptionList(params: string): boolean {
  if (params === '' || params.startsWith(',')) return false;
  let i = params.length;
  while (i > 0 && params[i - 1] === ',') i--;
  return (params.length - i) % 2 === 0;
}

export function isHelpOption(value: string): boolean {
  return value === '?' || value === 'help';
}

/** has_help_option: some comma-separated element (as get_opt_value reads it) is help or ?. */
export function hasHelpOption(params: string): boolean {
  let p = 0;
  while (p < params.length) {
    const v = readValue(params, p);
    p = v.end;
    if (p < params.length) p++;
    if (isHelpOption(v.value)) return true;
  }
  return false;
}

const typeNames: Record<OptType, string> = { string: 'str', bool: 'bool (on/off)', number: 'num', size: 'size' };

/** qemu_opts_print_help(list, false): sorted by name, `  name=<type>` padded to 24 columns. */
export function formatOptionHelp(descs: readonly OptDesc[]): string {
  const sorted = [...descs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sorted.map((d) => `${`  ${d.name}=<${typeNames[d.type]}>`.padEnd(24)} - ${d.help}\n`).join('');
}
