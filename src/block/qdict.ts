/**
 * QEMU's QObject model as the block layer uses it: option dictionaries (QDict) that are either
 * nested (QMP, json: filenames) or flat with dotted keys ("file.filename"), and their JSON
 * text. QEMU iterates a QDict in hash-bucket order, which is visible in `json:{...}` filenames
 * and in QMP replies, so QDict here remembers insertion order and can replay QEMU's order.
 */

export type QScalar = string | number | boolean | null;
export type QValue = QScalar | QDict | QValue[];

/** An insertion-ordered string-keyed dictionary (JS objects reorder integer-like keys). */
export class QDict extends Map<string, QValue> {
  static from(entries: Iterable<readonly [string, QValue]>): QDict {
    const d = new QDict();
    for (const [k, v] of entries) d.set(k, v);
    return d;
  }

  /** Deep copy. */
  clone(): QDict {
    const d = new QDict();
    for (const [k, v] of this) d.set(k, cloneValue(v));
    return d;
  }
}

export function cloneValue(v: QValue): QValue {
  if (v instanceof QDict) return v.clone();
  if (Array.isArray(v)) return v.map(cloneValue);
  return v;
}

export function isQDict(v: QValue | undefined): v is QDict {
  return v instanceof QDict;
}

/** Convert plain JS data (e.g. parsed JSON from elsewhere) into QDicts. */
export function toQValue(v: unknown): QValue {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (v instanceof QDict) return v;
  if (Array.isArray(v)) return v.map(toQValue);
  if (typeof v === 'object') {
    const d = new QDict();
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) d.set(k, toQValue(val));
    return d;
  }
  throw new TypeError(`cannot convert ${typeof v} to an option value`);
}

/** tdb_hash from QEMU's qobject/qdict.c: decides iteration order. */
function tdbHash(name: string): number {
  const bytes = Buffer.from(name, 'utf8');
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    value = (value + ((bytes[i]! << ((i * 5) % 24)) >>> 0)) >>> 0;
  }
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}

const QDICT_BUCKET_MAX = 512;

/**
 * Keys in the order QEMU's qdict_first/qdict_next visit them: by hash bucket, and within a
 * bucket the most recently inserted first.
 */
export function qdictOrder(keys: Iterable<string>): string[] {
  const buckets = new Map<number, string[]>();
  for (const k of keys) {
    const b = tdbHash(k) % QDICT_BUCKET_MAX;
    const list = buckets.get(b);
    if (list) list.unshift(k);
    else buckets.set(b, [k]);
  }
  return [...buckets.keys()].sort((a, b) => a - b).flatMap((b) => buckets.get(b)!);
}

/** Entries of a QDict in QEMU's iteration order. */
export function qdictEntries(d: QDict): Array<[string, QValue]> {
  return qdictOrder(d.keys()).map((k) => [k, d.get(k)!]);
}

/**
 * qdict_flatten: nested dicts and lists become dotted keys ("a.b", "a.0"); empty dicts and
 * lists stay as values.
 */
export function flatten(d: QDict): QDict {
  const out = new QDict();
  const walk = (prefix: string, v: QValue): void => {
    if (v instanceof QDict && v.size > 0) {
      for (const [k, child] of v) walk(prefix ? `${prefix}.${k}` : k, child);
    } else if (Array.isArray(v) && v.length > 0) {
      v.forEach((child, i) => walk(`${prefix}.${i}`, child));
    } else {
      out.set(prefix, v);
    }
  };
  for (const [k, v] of d) walk(k, v);
  return out;
}

/**
 * A simplified qdict_crumple: dotted keys become nested dicts; a dict whose keys are all
 * 0..n-1 becomes a list.
 */
export function crumple(flat: QDict): QDict {
  const root = new QDict();
  for (const [key, value] of flat) {
    const parts = key.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i]!;
      let next = node.get(p);
      if (!(next instanceof QDict)) {
        next = new QDict();
        node.set(p, next);
      }
      node = next;
    }
    node.set(parts[parts.length - 1]!, value);
  }
  const listify = (v: QValue): QValue => {
    if (!(v instanceof QDict)) return v;
    for (const [k, c] of v) v.set(k, listify(c));
    const keys = [...v.keys()];
    if (keys.length > 0 && keys.every((k, i) => k === String(i))) return [...v.values()];
    return v;
  };
  for (const [k, c] of root) root.set(k, listify(c));
  return root;
}

/** Extract (and remove) the entries under `prefix.` as a new flat dict without the prefix. */
export function extractSubdict(flat: QDict, prefix: string): QDict {
  const out = new QDict();
  const dotted = `${prefix}.`;
  for (const [k, v] of [...flat]) {
    if (k.startsWith(dotted)) {
      out.set(k.slice(dotted.length), v);
      flat.delete(k);
    }
  }
  return out;
}

function jsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c > 0xffff) {
      const hi = Math.floor((c - 0x10000) / 0x400) + 0xd800;
      const lo = ((c - 0x10000) % 0x400) + 0xdc00;
      out += `\\u${hi.toString(16)}\\u${lo.toString(16)}`;
    } else out += ch;
  }
  return `${out}"`;
}

function jsonNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  // qnum_to_string uses %.17g and trims; JS's shortest round-trip form matches in practice.
  return String(n);
}

/**
 * qobject_to_json: QEMU's compact form, `{"a": 1, "b": [1, 2]}`, dict members in QEMU's
 * hash order.
 */
export function toJson(v: QValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return jsonString(v);
  if (typeof v === 'number') return jsonNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return `[${v.map(toJson).join(', ')}]`;
  const members = qdictEntries(v).map(([k, val]) => `${jsonString(k)}: ${toJson(val)}`);
  return `{${members.join(', ')}}`;
}
