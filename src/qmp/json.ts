/**
 * JSON as QEMU reads and writes it (qobject/json-*.c, qobject/qdict.c).
 *
 * Writing: objects are QDicts, whose members come out in hash-table order (512 buckets keyed by
 * tdb_hash, newest entry first within a bucket), not in insertion order; compact output puts
 * ", " between members and ": " after keys; pretty output indents by four spaces. Strings
 * escape everything outside printable ASCII as \uXXXX (upper-case hex).
 *
 * Reading: QEMU's lexer also takes single-quoted strings and `\'`; integers become int64,
 * uint64 when they only fit there, doubles otherwise. Errors carry QEMU's texts.
 */

/** A JSON object with its member order as inserted (QEMU reorders when writing). */
export type JsonObject = Map<string, JsonValue>;
export type JsonValue = null | boolean | JsonNumber | string | JsonValue[] | JsonObject | { [key: string]: JsonValue };

/** Numbers keep QEMU's distinction between integers (int64/uint64) and doubles. */
export type JsonNumber = bigint | number;

const QDICT_BUCKETS = 512;

/** qdict.c's tdb_hash. */
export function tdbHash(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + ((bytes[i]! << ((i * 5) % 24)) >>> 0)) >>> 0;
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}

function entriesOf(obj: JsonObject | { [key: string]: JsonValue }): [string, JsonValue][] {
  return obj instanceof Map ? [...obj.entries()] : Object.entries(obj);
}

/** Members in the order QEMU iterates a QDict built by inserting them in the given order. */
export function qdictOrder(entries: [string, JsonValue][]): [string, JsonValue][] {
  const indexed = entries.map((e, i) => ({ e, i, bucket: tdbHash(e[0]) % QDICT_BUCKETS }));
  indexed.sort((a, b) => a.bucket - b.bucket || b.i - a.i);
  return indexed.map((x) => x.e);
}

function isObject(v: JsonValue): v is JsonObject | { [key: string]: JsonValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function quote(str: string): string {
  let out = '"';
  for (const ch of str) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        break;
      case '\\':
        out += '\\\\';
        break;
      case '\b':
        out += '\\b';
        break;
      case '\f':
        out += '\\f';
        break;
      case '\n':
        out += '\\n';
        break;
      case '\r':
        out += '\\r';
        break;
      case '\t':
        out += '\\t';
        break;
      default:
        if (cp > 0xffff) {
          const v = cp - 0x10000;
          out += `\\u${hex4(0xd800 + (v >> 10))}\\u${hex4(0xdc00 + (v & 0x3ff))}`;
        } else if (cp < 0x20 || cp >= 0x7f) {
          out += `\\u${hex4(cp)}`;
        } else {
          out += ch;
        }
    }
  }
  return `${out}"`;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** %.17g as glibc prints it, which is what QEMU writes for doubles. */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x < 0 ? '-inf' : 'inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  let text: string;
  const e = Number(x.toExponential(16).split('e')[1]);
  if (e < -4 || e >= 17) {
    const [mant, ex] = x.toExponential(16).split('e');
    const m = mant!.includes('.') ? mant!.replace(/0+$/, '').replace(/\.$/, '') : mant!;
    const n = Number(ex);
    text = `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  } else {
    text = x.toFixed(Math.max(0, 16 - e));
    if (text.includes('.')) text = text.replace(/0+$/, '').replace(/\.$/, '');
  }
  return text;
}

function scalar(v: JsonValue): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 2 ** 63 ? String(v) : formatDouble(v);
  if (typeof v === 'string') return quote(v);
  throw new Error('not a scalar');
}

/** One-line JSON as QMP prints it. */
export function toJson(v: JsonValue): string {
  if (Array.isArray(v)) return `[${v.map(toJson).join(', ')}]`;
  if (isObject(v)) {
    const members = qdictOrder(entriesOf(v));
    return `{${members.map(([k, val]) => `${quote(k)}: ${toJson(val)}`).join(', ')}}`;
  }
  return scalar(v);
}

/** qobject_to_json_pretty: four-space indentation, empty containers as "{\n<indent>}". */
export function toJsonPretty(v: JsonValue, level = 0): string {
  const pad = (n: number) => ' '.repeat(n * 4);
  if (Array.isArray(v)) {
    if (v.length === 0) return `[\n${pad(level)}]`;
    return `[\n${v.map((x) => pad(level + 1) + toJsonPretty(x, level + 1)).join(',\n')}\n${pad(level)}]`;
  }
  if (isObject(v)) {
    const members = qdictOrder(entriesOf(v));
    if (members.length === 0) return `{\n${pad(level)}}`;
    return `{\n${members.map(([k, val]) => `${pad(level + 1)}${quote(k)}: ${toJsonPretty(val, level + 1)}`).join(',\n')}\n${pad(level)}}`;
  }
  return scalar(v);
}

/** A JSON text QEMU's parser rejected; message is the QMP error description. */
export class JsonParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonParseError';
  }
}

type Token =
  | { kind: 'punct'; text: '{' | '}' | '[' | ']' | ':' | ',' }
  | { kind: 'string'; value: string }
  | { kind: 'integer'; text: string }
  | { kind: 'float'; text: string }
  | { kind: 'keyword'; text: string }
  | { kind: 'error'; text: string };

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * Splits a QMP input stream into top-level JSON values the way QEMU's json-streamer does:
 * a value ends when its brackets balance; lexical errors end the current value.
 */
export class JsonStreamer {
  private pending = '';
  private readonly emit: (result: { value: JsonValue } | { error: string }) => void;

  constructor(emit: (result: { value: JsonValue } | { error: string }) => void) {
    this.emit = emit;
  }

  feed(text: string): void {
    this.pending += text;
    this.drain();
  }

  private drain(): void {
    for (;;) {
      const split = scanValue(this.pending);
      if (split === null) return;
      this.pending = this.pending.slice(split.consumed);
      for (const err of split.lexErrors) this.emit({ error: err });
      // A lexical error drops the value being built, as QEMU's streamer does.
      if (split.tokens.length === 0 || split.lexErrors.length > 0) continue;
      try {
        this.emit({ value: parseTokens(split.tokens) });
      } catch (err) {
        this.emit({ error: err instanceof Error ? err.message : String(err) });
      }
    }
  }
}

interface ScanResult {
  consumed: number;
  tokens: Token[];
  lexErrors: string[];
}

/** Lexes from the start of text until one complete top-level value (or null if incomplete). */
function scanValue(text: string): ScanResult | null {
  const tokens: Token[] = [];
  const lexErrors: string[] = [];
  let depthBrace = 0;
  let depthBracket = 0;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      i++;
      continue;
    }
    if (ch === '{' || ch === '}' || ch === '[' || ch === ']' || ch === ':' || ch === ',') {
      tokens.push({ kind: 'punct', text: ch });
      i++;
      if (ch === '{') depthBrace++;
      else if (ch === '}') depthBrace--;
      else if (ch === '[') depthBracket++;
      else if (ch === ']') depthBracket--;
      if (depthBrace < 0 || depthBracket < 0 || (depthBrace === 0 && depthBracket === 0 && (ch === '}' || ch === ']'))) {
        return { consumed: i, tokens, lexErrors };
      }
      continue;
    }
    if (ch === '"' || ch === "'") {
      const s = lexString(text, i);
      if (s === null) return null;
      if ('error' in s) {
        lexErrors.push(s.error);
        return { consumed: s.end, tokens: [], lexErrors };
      }
      tokens.push({ kind: 'string', value: s.value });
      i = s.end;
      if (depthBrace === 0 && depthBracket === 0) return { consumed: i, tokens, lexErrors };
      continue;
    }
    const num = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
    if (num && (ch === '-' || (ch >= '0' && ch <= '9'))) {
      const end = i + num[0].length;
      // A number at the very end of the buffer may still grow.
      if (end === text.length) return null;
      tokens.push(num[1] !== undefined || num[2] !== undefined ? { kind: 'float', text: num[0] } : { kind: 'integer', text: num[0] });
      i = end;
      if (depthBrace === 0 && depthBracket === 0) return { consumed: i, tokens, lexErrors };
      continue;
    }
    if (/[a-zA-Z]/.test(ch)) {
      const m = /^[a-zA-Z]+/.exec(text.slice(i))!;
      const end = i + m[0].length;
      if (end === text.length) return null;
      tokens.push({ kind: 'keyword', text: m[0] });
      i = end;
      if (depthBrace === 0 && depthBracket === 0) return { consumed: i, tokens, lexErrors };
      continue;
    }
    // A character no token starts with: QEMU reports it and drops the value being built.
    lexErrors.push(`JSON parse error, stray '${ch}'`);
    tokens.push({ kind: 'error', text: ch });
    i++;
    return { consumed: i, tokens, lexErrors };
  }
  return null;
}

function lexString(text: string, start: number): { value: string; end: number } | { error: string; end: number } | null {
  const q = text[start]!;
  let i = start + 1;
  let value = '';
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === q) return { value, end: i + 1 };
    if (ch === '\\') {
      if (i + 1 >= text.length) return null;
      const e = text[i + 1]!;
      const simple: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e in simple) {
        value += simple[e];
        i += 2;
        continue;
      }
      if (e === 'u') {
        if (i + 6 > text.length) return null;
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return { error: 'JSON parse error, invalid escape sequence in string', end: i + 2 };
        let cp = parseInt(hex, 16);
        i += 6;
        if (cp >= 0xd800 && cp < 0xdc00 && text[i] === '\\' && text[i + 1] === 'u') {
          const low = parseInt(text.slice(i + 2, i + 6), 16);
          if (low >= 0xdc00 && low < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            i += 6;
          }
        }
        if (cp === 0) return { error: 'JSON parse error, \\u0000 is not supported', end: i };
        value += String.fromCodePoint(cp);
        continue;
      }
      return { error: 'JSON parse error, invalid escape sequence in string', end: i + 2 };
    }
    if (ch.charCodeAt(0) < 0x20) return { error: 'JSON parse error, control character in string', end: i + 1 };
    value += ch;
    i++;
  }
  return null;
}

function parseTokens(tokens: Token[]): JsonValue {
  let pos = 0;
  const peek = () => tokens[pos];

  function value(): JsonValue {
    const t = tokens[pos++];
    if (t === undefined) throw new JsonParseError('JSON parse error, expecting value');
    switch (t.kind) {
      case 'punct':
        if (t.text === '{') return object();
        if (t.text === '[') return array();
        throw new JsonParseError('JSON parse error, expecting value');
      case 'string':
        return t.value;
      case 'integer': {
        const n = BigInt(t.text);
        if (n >= INT64_MIN && n <= INT64_MAX) return n;
        if (n > 0n && n <= UINT64_MAX) return n;
        return Number(t.text);
      }
      case 'float':
        return Number(t.text);
      case 'keyword':
        if (t.text === 'true') return true;
        if (t.text === 'false') return false;
        if (t.text === 'null') return null;
        throw new JsonParseError(`JSON parse error, invalid keyword '${t.text}'`);
      case 'error':
        throw new JsonParseError('JSON parse error, expecting value');
    }
  }

  function object(): JsonObject {
    const obj: JsonObject = new Map();
    if (peek()?.kind === 'punct' && (peek() as { text: string }).text === '}') {
      pos++;
      return obj;
    }
    for (;;) {
      if (peek() === undefined) throw new JsonParseError('JSON parse error, premature EOI');
      const key = value();
      if (typeof key !== 'string') throw new JsonParseError('JSON parse error, key is not a string in object');
      const colon = tokens[pos++];
      if (colon?.kind !== 'punct' || colon.text !== ':') throw new JsonParseError('JSON parse error, missing : in object pair');
      const v = value();
      if (obj.has(key)) throw new JsonParseError('JSON parse error, duplicate key');
      obj.set(key, v);
      const sep = tokens[pos++];
      if (sep?.kind === 'punct' && sep.text === '}') return obj;
      if (sep?.kind !== 'punct' || sep.text !== ',') throw new JsonParseError('JSON parse error, expected separator in dict');
    }
  }

  function array(): JsonValue[] {
    const arr: JsonValue[] = [];
    if (peek()?.kind === 'punct' && (peek() as { text: string }).text === ']') {
      pos++;
      return arr;
    }
    for (;;) {
      arr.push(value());
      const sep = tokens[pos++];
      if (sep?.kind === 'punct' && sep.text === ']') return arr;
      if (sep?.kind !== 'punct' || sep.text !== ',') throw new JsonParseError('JSON parse error, expected separator in list');
    }
  }

  const v = value();
  if (pos < tokens.length) throw new JsonParseError('JSON parse error, expecting value');
  return v;
}

/** Parses one complete JSON text (QEMU syntax); throws JsonParseError. */
export function parseJson(text: string): JsonValue {
  const results: ({ value: JsonValue } | { error: string })[] = [];
  const s = new JsonStreamer((r) => results.push(r));
  s.feed(`${text} `);
  const first = results[0];
  if (first === undefined) throw new JsonParseError('JSON parse error, expecting value');
  if ('error' in first) throw new JsonParseError(first.error);
  return first.value;
}
