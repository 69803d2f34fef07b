/**
 * The iotests' qcow2.py (with qcow2_format.py, QEMU 7.2) in TypeScript: dump and edit the qcow2
 * header and its extensions exactly as that script prints and writes them. It reads the fields
 * the qcow2 spec (docs/interop/qcow2.txt) defines at their fixed offsets and knows nothing of the
 * engine in src/qcow2, so it works on images of either backend and on corrupt ones, which is
 * what the tests use it for.
 */
import * as fs from 'node:fs';

export interface Qcow2ToolResult {
  /** What the script prints on stdout. */
  output: string;
  exitCode: number;
}

type Fmt = 'hex' | 'dec' | 'flags';
/** [byte width, how dump prints it, name], in header order (big-endian, 104 bytes). */
const HEADER_FIELDS: readonly [4 | 8, Fmt, string][] = [
  [4, 'hex', 'magic'],
  [4, 'dec', 'version'],
  [8, 'hex', 'backing_file_offset'],
  [4, 'hex', 'backing_file_size'],
  [4, 'dec', 'cluster_bits'],
  [8, 'dec', 'size'],
  [4, 'dec', 'crypt_method'],
  [4, 'dec', 'l1_size'],
  [8, 'hex', 'l1_table_offset'],
  [8, 'hex', 'refcount_table_offset'],
  [4, 'dec', 'refcount_table_clusters'],
  [4, 'dec', 'nb_snapshots'],
  [8, 'hex', 'snapshot_offset'],
  [8, 'flags', 'incompatible_features'],
  [8, 'flags', 'compatible_features'],
  [8, 'flags', 'autoclear_features'],
  [4, 'dec', 'refcount_order'],
  [4, 'dec', 'header_length'],
];
const HEADER_SIZE = HEADER_FIELDS.reduce((n, f) => n + f[0], 0);

const EXT_NAMES = new Map<number, string>([
  [0xe2792aca, 'Backing format'],
  [0x6803f857, 'Feature table'],
  [0x0537be77, 'Crypto header'],
  [0x23852875, 'Bitmaps'],
  [0x44415441, 'Data file'],
]);
const EXT_BITMAPS = 0x23852875;

/** Python's string.printable, as bytes. */
const PRINTABLE = new Set([...'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x0b\x0c'].map((c) => c.charCodeAt(0)));

class ScriptExit extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`exit ${status}`);
    this.status = status;
  }
}

/** A file opened read-write, read and written at explicit positions like Python's fd. */
class File {
  pos = 0;
  readonly fd: number;
  constructor(fd: number) {
    this.fd = fd;
  }
  read(n: number): Buffer {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(this.fd, buf, 0, n, this.pos);
    this.pos += got;
    return buf.subarray(0, got);
  }
  write(data: Buffer): void {
    fs.writeSync(this.fd, data, 0, data.length, this.pos);
    this.pos += data.length;
  }
}

function unpack(buf: Buffer, width: 1 | 2 | 4 | 8, at: number): bigint {
  switch (width) {
    case 1:
      return BigInt(buf.readUInt8(at));
    case 2:
      return BigInt(buf.readUInt16BE(at));
    case 4:
      return BigInt(buf.readUInt32BE(at));
    case 8:
      return buf.readBigUInt64BE(at);
  }
}

/** struct.unpack of a big-endian record; fails like Python on a short read. */
function readStruct(f: File, widths: readonly (1 | 2 | 4 | 8)[]): bigint[] {
  const size = widths.reduce((n, w) => n + w, 0);
  const buf = f.read(size);
  if (buf.length < size) throw new Qcow2ToolError(`struct.error: unpack requires a buffer of ${size} bytes`);
  let at = 0;
  return widths.map((w) => {
    const v = unpack(buf, w, at);
    at += w;
    return v;
  });
}

export class Qcow2ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Qcow2ToolError';
  }
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

function flags(v: bigint): string {
  const bits: number[] = [];
  for (let b = 0; b < 64; b++) if (v & (1n << BigInt(b))) bits.push(b);
  return `[${bits.join(', ')}]`;
}

function line(name: string, value: string): string {
  return `${name.padEnd(25)} ${value}\n`;
}

interface BitmapEntry {
  fields: [string, string][];
  name: string;
  table: { type: string; offset: bigint }[];
  tableSize: bigint;
  json: Record<string, unknown>;
}

interface Extension {
  magic: number;
  length: number;
  /** Padded data; null for a bitmaps extension read from the image. */
  data: Buffer | null;
  dataStr?: string;
  bitmaps?: { fields: [string, string][]; entries: BitmapEntry[]; json: Record<string, unknown> };
}

function makeExtension(magic: number, length: number, data: Buffer | null): Extension {
  const ext: Extension = { magic, length, data };
  if (data !== null) {
    const shown = data.subarray(0, length);
    ext.dataStr = [...shown].every((b) => PRINTABLE.has(b)) ? `'${shown.toString('latin1')}'` : '<binary>';
  }
  return ext;
}

function readBitmaps(f: File, clusterSize: bigint): Extension['bitmaps'] {
  const [nb, reserved, dirSize, dirOffset] = readStruct(f, [4, 4, 8, 8]) as [bigint, bigint, bigint, bigint];
  const position = f.pos;
  f.pos = Number(dirOffset);
  const entries: BitmapEntry[] = [];
  for (let i = 0n; i < nb; i++) {
    const [tableOffset, tableSize, flagBits, type, granularity, nameSize, extraSize] = readStruct(f, [8, 4, 4, 1, 1, 2, 4]) as bigint[];
    f.pos += Number(extraSize);
    const name = f.read(Number(nameSize)).toString('ascii');
    const raw = 24 + Number(nameSize) + Number(extraSize!);
    f.pos += ((raw + 7) & ~7) - raw;
    const back = f.pos;
    f.pos = Number(tableOffset);
    const table: { type: string; offset: bigint }[] = [];
    for (let t = 0n; t < tableSize!; t++) {
      const [entry] = readStruct(f, [8]) as [bigint];
      const offset = entry & 0x00fffffffffffe00n;
      const allOnes = (entry & 1n) !== 0n;
      table.push({ type: offset ? (allOnes ? 'invalid' : 'serialized') : allOnes ? 'all-ones' : 'all-zeroes', offset });
    }
    f.pos = back;
    const flagNames: string[] = [];
    for (let b = 0; b < 64; b++) {
      const bit = flagBits! & (1n << BigInt(b));
      if (bit) flagNames.push(bit === 1n ? "'in-use'" : bit === 2n ? "'auto'" : `'bit-${b}'`);
    }
    entries.push({
      name,
      tableSize: tableSize!,
      table,
      fields: [
        ['bitmap_table_offset', hex(tableOffset!)],
        ['bitmap_table_size', `${tableSize}`],
        ['flags', `${hex(flagBits!)} ([${flagNames.join(', ')}])`],
        ['type', `${type}`],
        ['granularity_bits', `${granularity}`],
        ['name_size', `${nameSize}`],
        ['extra_data_size', `${extraSize}`],
      ],
      json: {
        name,
        bitmap_table_offset: tableOffset,
        bitmap_table_size: tableSize,
        flags: flagBits,
        type,
        granularity_bits: granularity,
        name_size: nameSize,
        extra_data_size: extraSize,
        bitmap_table: table.map((t) => ({ type: t.type, offset: t.offset, reserved: 0n })),
      },
    });
  }
  f.pos = position;
  void clusterSize;
  return {
    fields: [
      ['nb_bitmaps', `${nb}`],
      ['reserved32', `${reserved}`],
      ['bitmap_directory_size', hex(dirSize)],
      ['bitmap_directory_offset', hex(dirOffset)],
    ],
    entries,
    json: { nb_bitmaps: nb, reserved32: reserved, bitmap_directory_size: dirSize, bitmap_directory_offset: dirOffset, bitmap_directory: entries.map((e) => e.json) },
  };
}

class Header {
  readonly values = new Map<string, bigint>();
  readonly clusterSize: bigint;
  readonly extensions: Extension[] = [];
  backingFile: Buffer | null;

  constructor(f: File) {
    f.pos = 0;
    const raw = readStruct(
      f,
      HEADER_FIELDS.map((h) => h[0]),
    );
    HEADER_FIELDS.forEach((h, i) => this.values.set(h[2], raw[i]!));
    if (this.get('version') === 2n) {
      for (const n of ['incompatible_features', 'compatible_features', 'autoclear_features']) this.values.set(n, 0n);
      this.values.set('refcount_order', 4n);
      this.values.set('header_length', 72n);
    }
    this.clusterSize = 1n << this.get('cluster_bits');
    f.pos = Number(this.get('header_length'));
    const bfo = this.get('backing_file_offset');
    const end = bfo !== 0n ? (this.clusterSize < bfo ? this.clusterSize : bfo) : this.clusterSize;
    while (BigInt(f.pos) < end) {
      const [magic, length] = readStruct(f, [4, 4]) as [bigint, bigint];
      if (magic === 0n) break;
      if (Number(magic) === EXT_BITMAPS) {
        const ext = makeExtension(Number(magic), Number(length), null);
        ext.bitmaps = readBitmaps(f, this.clusterSize);
        this.extensions.push(ext);
        // Qcow2BitmapExt leaves the position after its 24-byte record (already 8-aligned).
      } else {
        const padded = (Number(length) + 7) & ~7;
        this.extensions.push(makeExtension(Number(magic), Number(length), f.read(padded)));
      }
    }
    if (bfo !== 0n) {
      f.pos = Number(bfo);
      this.backingFile = f.read(Number(this.get('backing_file_size')));
    } else this.backingFile = null;
  }

  get(name: string): bigint {
    return this.values.get(name)!;
  }

  dump(json: boolean): string {
    if (json) return `${pyJson(Object.fromEntries(HEADER_FIELDS.map((h) => [h[2], this.get(h[2])])))}\n`;
    return HEADER_FIELDS.map(([, fmt, name]) => {
      const v = this.get(name);
      return line(name, fmt === 'hex' ? hex(v) : fmt === 'flags' ? flags(v) : v.toString());
    }).join('');
  }

  dumpExtensions(json: boolean): string {
    if (json) {
      return `${pyJson(
        this.extensions.map((e) => ({
          name: EXT_NAMES.get(e.magic) ?? '<unknown>',
          magic: BigInt(e.magic),
          length: BigInt(e.length),
          ...(e.bitmaps ? { data: e.bitmaps.json } : { data_str: e.dataStr }),
        })),
      )}\n`;
    }
    let out = '';
    for (const e of this.extensions) {
      out += 'Header extension:\n';
      out += line('magic', `${hex(BigInt(e.magic))} (${EXT_NAMES.get(e.magic) ?? '<unknown>'})`);
      out += line('length', `${e.length}`);
      if (e.bitmaps) {
        for (const [n, v] of e.bitmaps.fields) out += line(n, v);
        for (const entry of e.bitmaps.entries) {
          out += '\n';
          out += line('Bitmap name', entry.name);
          for (const [n, v] of entry.fields) out += line(n, v);
          out += `${'Bitmap table'.padEnd(14)} ${'type'.padEnd(15)} ${'size'.padEnd(12)} offset\n`;
          entry.table.forEach((t, i) => {
            const size = t.type === 'serialized' ? this.clusterSize : 0n;
            out += `${String(i).padEnd(14)} ${t.type.padEnd(15)} ${String(size).padEnd(12)} ${t.offset}\n`;
          });
        }
      } else out += line('data', e.dataStr!);
      out += '\n';
    }
    return out;
  }

  /** QcowHeader.update: extensions (plus the end marker) and backing file name, then the header. */
  update(f: File): void {
    const headerBytes = Number(this.get('header_length'));
    f.pos = headerBytes;
    for (const ex of [...this.extensions, makeExtension(0, 0, Buffer.alloc(0))]) {
      if (ex.data === null) throw new Qcow2ToolError("TypeError: a bytes-like object is required, not 'NoneType'");
      const head = Buffer.alloc(8);
      head.writeUInt32BE(ex.magic >>> 0, 0);
      head.writeUInt32BE(ex.length >>> 0, 4);
      f.write(head);
      f.write(ex.data);
    }
    if (this.backingFile !== null) {
      this.values.set('backing_file_offset', BigInt(f.pos));
      f.write(this.backingFile);
    }
    if (BigInt(f.pos) > this.clusterSize) throw new Qcow2ToolError('Exception: I think I just broke the image...');
    const buf = Buffer.alloc(HEADER_SIZE);
    let at = 0;
    for (const [width, , name] of HEADER_FIELDS) {
      const v = BigInt.asUintN(width * 8, this.get(name));
      if (width === 4) buf.writeUInt32BE(Number(v), at);
      else buf.writeBigUInt64BE(v, at);
      at += width;
    }
    f.pos = 0;
    // The script writes header_length - 1 bytes of the packed header (Python slice buf[0:n-1]).
    f.write(buf.subarray(0, Math.max(0, headerBytes - 1)));
  }
}

/** Python's json.dumps(value, indent=4) for the values these dumps hold. */
export function pyJson(value: unknown, level = 0): string {
  const ind = (n: number): string => ' '.repeat(4 * n);
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'bigint' || typeof value === 'number') return value.toString();
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => ind(level + 1) + pyJson(v, level + 1)).join(',\n')}\n${ind(level)}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${ind(level + 1)}${JSON.stringify(k)}: ${pyJson(v, level + 1)}`).join(',\n')}\n${ind(level)}}`;
}

/** Python's int(text, 0). */
function pyInt(text: string): bigint | null {
  const t = text.trim().replace(/_/g, '');
  const m = /^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0+|[1-9][0-9]*)$/.exec(t);
  if (!m) return null;
  const body = m[2]!;
  const v = /^0[oO]/.test(body) ? BigInt(`0o${body.slice(2)}`) : /^0+$/.test(body) ? 0n : BigInt(body);
  return m[1] === '-' ? -v : v;
}

const COMMANDS: [string, number, string][] = [
  ['dump-header', 0, 'Dump image header and header extensions'],
  ['dump-header-exts', 0, 'Dump image header extensions'],
  ['set-header', 2, 'Set a field in the header'],
  ['add-header-ext', 2, 'Add a header extension'],
  ['add-header-ext-stdio', 1, 'Add a header extension, data from stdin'],
  ['del-header-ext', 1, 'Delete a header extension'],
  ['set-feature-bit', 2, 'Set a feature bit'],
];

function usage(): string {
  let out = 'Usage: qcow2.py <file> <cmd> [<arg>, ...] [<key>, ...]\n\nSupported commands:\n';
  for (const [name, , desc] of COMMANDS) out += `    ${name.padEnd(20)} - ${desc}\n`;
  return `${out}\nSupported keys:\n    ${'-j'.padEnd(20)} - Dump in JSON format\n`;
}

/** `qcow2.py FILE ARGS...`; `stdin` feeds add-header-ext-stdio. */
export function runQcow2Tool(file: string, argv: readonly string[], stdin = ''): Qcow2ToolResult {
  let out = '';
  const json = argv.includes('-j');
  const args = argv.filter((a) => a !== '-j');
  if (args.length < 1) return { output: usage(), exitCode: 1 };
  const [cmd, ...rest] = args as [string, ...string[]];
  let fd: number;
  try {
    fd = fs.openSync(file, 'r+');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Qcow2ToolError(`${code === 'ENOENT' ? 'FileNotFoundError: [Errno 2] No such file or directory' : `OSError: ${code}`}: '${file}'`);
  }
  const f = new File(fd);
  try {
    const command = COMMANDS.find((c) => c[0] === cmd);
    if (!command) return { output: `Unknown command '${cmd}'\n`, exitCode: 0 };
    if (rest.length !== command[1]) return { output: usage(), exitCode: 0 };
    switch (cmd) {
      case 'dump-header': {
        const h = new Header(f);
        out += h.dump(json);
        out += '\n';
        out += h.dumpExtensions(json);
        break;
      }
      case 'dump-header-exts':
        out += new Header(f).dumpExtensions(json);
        break;
      case 'set-header': {
        const [name, value] = rest as [string, string];
        const v = pyInt(value);
        if (v === null) {
          out += `'${value}' is not a valid number\n`;
          throw new ScriptExit(1);
        }
        if (!HEADER_FIELDS.some((h) => h[2] === name)) {
          out += `'${name}' is not a known header field\n`;
          throw new ScriptExit(1);
        }
        const h = new Header(f);
        h.values.set(name, v);
        h.update(f);
        break;
      }
      case 'add-header-ext':
      case 'add-header-ext-stdio': {
        const magic = pyInt(rest[0]!);
        if (magic === null) {
          out += `'${rest[0]}' is not a valid magic number\n`;
          throw new ScriptExit(1);
        }
        const text = cmd === 'add-header-ext' ? rest[1]! : stdin;
        if (/[^\x00-\x7f]/.test(text)) throw new Qcow2ToolError("UnicodeEncodeError: 'ascii' codec can't encode the data");
        const data = Buffer.from(text, 'latin1');
        const padded = Buffer.concat([data, Buffer.alloc((8 - (data.length % 8)) % 8)]);
        const h = new Header(f);
        h.extensions.push(makeExtension(Number(BigInt.asUintN(32, magic)), data.length, padded));
        h.update(f);
        break;
      }
      case 'del-header-ext': {
        const magic = pyInt(rest[0]!);
        if (magic === null) {
          out += `'${rest[0]}' is not a valid magic number\n`;
          throw new ScriptExit(1);
        }
        const h = new Header(f);
        const before = h.extensions.length;
        for (let i = h.extensions.length - 1; i >= 0; i--) if (BigInt(h.extensions[i]!.magic) === magic) h.extensions.splice(i, 1);
        if (h.extensions.length === before) {
          out += 'No such header extension\n';
          break;
        }
        h.update(f);
        break;
      }
      case 'set-feature-bit': {
        const [group, bitText] = rest as [string, string];
        const bit = pyInt(bitText);
        if (bit === null || bit < 0n || bit >= 64n) {
          out += `'${bitText}' is not a valid bit number in range [0, 64)\n`;
          throw new ScriptExit(1);
        }
        const field = { incompatible: 'incompatible_features', compatible: 'compatible_features', autoclear: 'autoclear_features' }[group];
        if (!field) {
          out += `'${group}' is not a valid group, try 'incompatible', 'compatible', or 'autoclear'\n`;
          throw new ScriptExit(1);
        }
        const h = new Header(f);
        h.values.set(field, h.get(field) | (1n << bit));
        h.update(f);
        break;
      }
    }
    return { output: out, exitCode: 0 };
  } catch (err) {
    if (err instanceof ScriptExit) return { output: out, exitCode: err.status };
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}
