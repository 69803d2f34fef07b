/**
 * Typed access to QMP arguments with the QAPI input visitor's checks and messages: members are
 * visited in schema order (missing ones and wrong types reported as QEMU does), then the first
 * leftover member in QDict iteration order is "unexpected".
 */
import { GStrSet } from './ghash.ts';
import { qdictOrder, type JsonObject, type JsonValue } from './json.ts';

/** A QMP command failure: the error class and description QEMU replies with. */
export class QmpError extends Error {
  readonly errorClass: string;
  constructor(desc: string, errorClass = 'GenericError') {
    super(desc);
    this.name = 'QmpError';
    this.errorClass = errorClass;
  }
}

export type Schema =
  | { t: 'str' }
  | { t: 'int' }
  | { t: 'uint64' }
  | { t: 'bool' }
  | { t: 'enum'; values: readonly string[] }
  /** An alternate of a string (reference) and an object (inline definition). */
  | { t: 'ref'; name: string }
  | { t: 'object' }
  | { t: 'list'; of: Schema }
  | { t: 'struct'; members: readonly Member[] };

export interface Member {
  name: string;
  optional?: boolean;
  schema: Schema;
}

export const str: Schema = { t: 'str' };
export const int: Schema = { t: 'int' };
export const uint64: Schema = { t: 'uint64' };
export const bool: Schema = { t: 'bool' };
export function enumOf(...values: string[]): Schema {
  return { t: 'enum', values };
}

export type Visited = Map<string, JsonValue>;

function fullName(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}

function typeError(name: string, expected: string): QmpError {
  return new QmpError(`Invalid parameter type for '${name}', expected: ${expected}`);
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return v instanceof Map;
}

/** Checks one value against its schema; returns it (numbers as bigint). */
export function visitValue(v: JsonValue, schema: Schema, name: string, path: string): JsonValue {
  switch (schema.t) {
    case 'str':
      if (typeof v !== 'string') throw typeError(path, 'string');
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw typeError(path, 'boolean');
      return v;
    case 'int':
      if (typeof v !== 'bigint' || v < -(1n << 63n) || v >= 1n << 63n) throw new QmpError(`Parameter '${path}' expects int64`);
      return v;
    case 'uint64':
      if (typeof v !== 'bigint') throw new QmpError(`Parameter '${path}' expects uint64`);
      // Negative values are accepted for backward compatibility and wrap around.
      return v < 0n ? v + (1n << 64n) : v;
    case 'enum':
      if (typeof v !== 'string') throw typeError(path, 'string');
      if (!schema.values.includes(v)) throw new QmpError(`Parameter '${name}' does not accept value '${v}'`);
      return v;
    case 'ref':
      if (typeof v !== 'string' && !isObject(v)) throw typeError(name, schema.name);
      return v;
    case 'object':
      if (!isObject(v)) throw typeError(path, 'object');
      return v;
    case 'list':
      if (!Array.isArray(v)) throw typeError(path, 'array');
      return v.map((x, i) => visitValue(x, schema.of, name, `${path}[${i}]`));
    case 'struct':
      if (!isObject(v)) throw typeError(path, 'object');
      return visitStruct(v, schema.members, path);
  }
}

/** Visits a struct's members in order, then rejects leftovers; returns the visited members. */
export function visitStruct(obj: JsonObject, members: readonly Member[], prefix = '', allowExtra = false): Visited {
  const out: Visited = new Map();
  for (const m of members) {
    const path = fullName(prefix, m.name);
    if (!obj.has(m.name)) {
      if (m.optional) continue;
      throw new QmpError(`Parameter '${path}' is missing`);
    }
    out.set(m.name, visitValue(obj.get(m.name)!, m.schema, m.name, path));
  }
  if (!allowExtra) checkUnexpected(obj, new Set(members.map((m) => m.name)), prefix);
  return out;
}

/**
 * qobject_input_check_struct: the visitor keeps the members not yet visited in a GHashTable
 * filled in QDict order and reports the first one its iteration finds.
 */
export function checkUnexpected(obj: JsonObject, known: Set<string>, prefix = ''): void {
  const set = new GStrSet();
  for (const [key] of qdictOrder([...obj.entries()])) set.add(key);
  for (const key of known) set.delete(key);
  const first = set.entries()[0];
  if (first !== undefined) throw new QmpError(`Parameter '${fullName(prefix, first)}' is unexpected`);
}
