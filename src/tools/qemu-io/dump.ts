/**
 * dump_qobject/dump_qdict of QEMU's block/qapi.c: the "Format specific information" section
 * that `qemu-io info` (and `qemu-img info`) print, keys in QDict iteration order with '-'
 * shown as ' ', nested values indented by four spaces per level.
 */
import { qdictOrder } from '../../block/qdict.ts';
import type { JsonValue } from '../../qmp/json.ts';

function entriesOf(v: Map<string, JsonValue> | { [key: string]: JsonValue }): Array<[string, JsonValue]> {
  return v instanceof Map ? [...v.entries()] : Object.entries(v);
}

function isComposite(v: JsonValue): boolean {
  return v !== null && typeof v === 'object' && !(typeof v === 'bigint');
}

export function dumpQObject(indent: number, v: JsonValue): string {
  if (Array.isArray(v)) {
    let out = '';
    v.forEach((item, i) => {
      out += `${' '.repeat(indent * 4)}[${i}]:${isComposite(item) ? '\n' : ' '}`;
      out += dumpQObject(indent + 1, item);
    });
    return out;
  }
  if (v !== null && typeof v === 'object' && typeof v !== 'bigint') {
    const entries = entriesOf(v as Map<string, JsonValue>);
    const byKey = new Map(entries);
    let out = '';
    for (const key of qdictOrder(byKey.keys())) {
      const value = byKey.get(key)!;
      out += `${' '.repeat(indent * 4)}${key.replaceAll('-', ' ')}:${isComposite(value) ? '\n' : ' '}`;
      out += dumpQObject(indent + 1, value);
    }
    return out;
  }
  return `${String(v)}\n`;
}
