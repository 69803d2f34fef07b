/**
 * Option text shared by every front end: QemuOpts strings (`-o key=value,key2=value`,
 * `--image-opts`, `-blockdev`), `json:{...}` filenames, and typed access to option values the
 * way QEMU's QemuOpts converts them (bool "on"/"off", numbers, sizes with suffixes).
 *
 * Options travel through the block layer as flat QDicts with dotted keys, exactly as in
 * QEMU: `file.filename=x` stays one key until the child named `file` is opened and takes its
 * `file.*` entries.
 */
import { OptionsError } from './errors.ts';
import { parseQemuJson } from './json.ts';
import { QDict, flatten, type QValue } from './qdict.ts';
import { qemuStrtosz, strtolFull } from '../tools/common/numbers.ts';
import { Errno } from '../errno.ts';

export interface OptsParseOptions {
  /** QemuOptsList.implied_opt_name when abbreviations are permitted ("file" for -drive). */
  impliedName?: string;
  /**
   * merge_lists lists (qemu-io's `open -o`) refuse an `id`; other lists drop it. Default true.
   */
  mergeLists?: boolean;
  /** Receives QEMU's deprecation warning for `flag` without `=on` (warning, then hint). */
  onWarning?: (warning: string, hint: string) => void;
}

/** get_opt_value: up to the next single comma; ",," stands for a literal comma. */
function readValue(text: string, start: number): [string, number] {
  let out = '';
  let i = start;
  while (i < text.length) {
    if (text[i] === ',') {
      if (text[i + 1] === ',') {
        out += ',';
        i += 2;
        continue;
      }
      break;
    }
    out += text[i];
    i++;
  }
  return [out, i];
}

interface RawOpt {
  name: string;
  value: string;
  /** True for `flag` / `noflag` written without "=". */
  shortForm: boolean;
  prefix: string;
}

function splitOpts(params: string, impliedName: string | undefined): RawOpt[] {
  const out: RawOpt[] = [];
  let p = 0;
  let firstname = impliedName;
  while (p < params.length) {
    let len = 0;
    while (p + len < params.length && params[p + len] !== '=' && params[p + len] !== ',') len++;
    let opt: RawOpt;
    if (params[p + len] !== '=') {
      if (firstname !== undefined) {
        const [value, end] = readValue(params, p);
        opt = { name: firstname, value, shortForm: false, prefix: '' };
        p = end;
      } else {
        const name = params.slice(p, p + len);
        p += len;
        opt = name.startsWith('no')
          ? { name: name.slice(2), value: 'off', shortForm: true, prefix: 'no' }
          : { name, value: 'on', shortForm: true, prefix: '' };
      }
    } else {
      const name = params.slice(p, p + len);
      const [value, end] = readValue(params, p + len + 1);
      opt = { name, value, shortForm: false, prefix: '' };
      p = end;
    }
    if (params[p] === ',') p++;
    firstname = undefined;
    out.push(opt);
  }
  return out;
}

function isHelpOption(name: string): boolean {
  return name === 'help' || name === '?';
}

/**
 * qemu_opts_parse_noisily for option lists that accept anything: `key=value` pairs into a
 * flat QDict of strings (later keys win). Throws OptionsError with QEMU's message.
 */
export function parseOptsString(params: string, opts: OptsParseOptions = {}): QDict {
  const raw = splitOpts(params, opts.impliedName);
  const out = new QDict();
  const id = raw.find((o) => o.name === 'id');
  if (id && (opts.mergeLists ?? true)) throw new OptionsError("Invalid parameter 'id'");
  for (const o of raw) {
    if (o.shortForm && !isHelpOption(o.name) && opts.onWarning) {
      const name = o.name === 'delay' ? 'nodelay' : o.name;
      const value = o.name === 'delay' ? (o.prefix ? 'on' : 'off') : o.value;
      opts.onWarning(`short-form boolean option '${o.prefix}${o.name}' deprecated`, `Please use ${name}=${value} instead\n`);
    }
    if (o.name === 'id') continue;
    // qemu_opts_to_qdict keeps the last value of a repeated key.
    out.delete(o.name);
    out.set(o.name, o.value);
  }
  return out;
}

/** Whether a filename uses the `json:` pseudo-protocol. */
export function isJsonFilename(filename: string): boolean {
  return filename.startsWith('json:');
}

/**
 * parse_json_filename: the `json:` text as a flat QDict. Errors as QEMU words them.
 */
export function parseJsonFilename(filename: string): QDict {
  let value: QValue;
  try {
    value = parseQemuJson(filename.slice('json:'.length));
  } catch (err) {
    if (err instanceof OptionsError) throw new OptionsError(`Could not parse the JSON options: ${err.message}`);
    throw err;
  }
  if (!(value instanceof QDict)) throw new OptionsError('Invalid JSON object given');
  return flatten(value);
}

// ---- typed access, as QemuOpts converts values ----

/** Text form of a scalar as qemu_opts_from_qdict_entry produces it; null for unsupported. */
export function optionText(v: QValue): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return null;
}

export function parseBoolOption(name: string, v: QValue): boolean {
  if (typeof v === 'boolean') return v;
  const t = optionText(v);
  if (t === 'on' || t === 'yes' || t === 'true' || t === 'y') return true;
  if (t === 'off' || t === 'no' || t === 'false' || t === 'n') return false;
  throw new OptionsError(`Parameter '${name}' expects 'on' or 'off'`);
}

export function parseNumberOption(name: string, v: QValue): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  const t = optionText(v);
  const n = t === null ? null : strtolFull(t);
  if (n === null) throw new OptionsError(`Parameter '${name}' expects a number`);
  return n;
}

export class SizeOptionError extends OptionsError {
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

export function parseSizeOption(name: string, v: QValue): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  const t = typeof v === 'string' ? v : null;
  if (t === null) throw new SizeOptionError(`Parameter '${name}' expects a non-negative number below 2^64`);
  const r = qemuStrtosz(t);
  if (!r.ok) {
    if (r.errno === Errno.ERANGE) throw new SizeOptionError(`Value '${t}' is out of range for parameter '${name}'`);
    throw new SizeOptionError(
      `Parameter '${name}' expects a non-negative number below 2^64`,
      'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.\n',
    );
  }
  return Number(r.value);
}

/**
 * A driver's view of its options: it takes the keys it knows (QEMU's
 * qemu_opts_absorb_qdict), and whatever is left afterwards is an unsupported option.
 */
export class OptionBag {
  readonly flat: QDict;
  constructor(flat: QDict) {
    this.flat = flat;
  }

  has(key: string): boolean {
    return this.flat.has(key);
  }

  peek(key: string): QValue | undefined {
    return this.flat.get(key);
  }

  take(key: string): QValue | undefined {
    const v = this.flat.get(key);
    this.flat.delete(key);
    return v === null ? undefined : v;
  }

  takeString(key: string): string | undefined {
    const v = this.take(key);
    if (v === undefined) return undefined;
    const t = optionText(v);
    if (t === null) throw new OptionsError(`Invalid parameter type for '${key}', expected: string`);
    return t;
  }

  takeBool(key: string, dflt: boolean): boolean {
    const v = this.take(key);
    return v === undefined ? dflt : parseBoolOption(key, v);
  }

  takeNumber(key: string, dflt: number): number {
    const v = this.take(key);
    return v === undefined ? dflt : parseNumberOption(key, v);
  }

  takeSize(key: string, dflt: number): number {
    const v = this.take(key);
    return v === undefined ? dflt : parseSizeOption(key, v);
  }

  /** Remove and return every `prefix.*` entry (prefix stripped). */
  takeChild(prefix: string): QDict {
    const out = new QDict();
    const dotted = `${prefix}.`;
    for (const [k, v] of [...this.flat]) {
      if (k.startsWith(dotted)) {
        out.set(k.slice(dotted.length), v);
        this.flat.delete(k);
      }
    }
    return out;
  }

  keys(): string[] {
    return [...this.flat.keys()];
  }
}
