/**
 * --object definitions (user_creatable_process_cmdline) for qemu-img and qemu-io: QEMU creates
 * the object while parsing the option, so a bad definition ends the tool at once. Only `secret`
 * objects exist here; they go into the run's SecretStore for the options that name them.
 */
import { QemuError } from '../../block/create-opts.ts';
import type { SecretDefinition, SecretStore } from '../../block/secrets.ts';
import type { PathPolicy } from '../context.ts';

/** Members of the user-creatable `secret` object. */
const SECRET_MEMBERS = new Set(['qom-type', 'id', 'data', 'file', 'format', 'keyid', 'iv', 'loaded']);

/** Create the object `text` describes; throws QemuError with QEMU's message. */
export function defineObject(store: SecretStore, text: string, ctx: { cwd: string; pathPolicy?: PathPolicy }): void {
  const def = new Map<string, string>();
  let first = true;
  for (const el of splitObjectList(text)) {
    const name = el.name ?? (first ? 'qom-type' : el.value);
    def.set(name, el.name === undefined && !first ? 'on' : el.value);
    first = false;
  }
  const type = def.get('qom-type');
  if (type === undefined) throw new QemuError("Parameter 'qom-type' is missing");
  if (type !== 'secret') throw new QemuError(`Parameter 'qom-type' does not accept value '${type}'`);
  const id = def.get('id');
  if (id === undefined) throw new QemuError("Parameter 'id' is missing");
  for (const k of def.keys()) if (!SECRET_MEMBERS.has(k)) throw new QemuError(`Parameter '${k}' is unexpected`);
  const secret: SecretDefinition = { id };
  for (const key of ['data', 'file', 'format', 'keyid'] as const) {
    const v = def.get(key);
    if (v !== undefined) secret[key] = v;
  }
  store.define(secret, ctx);
}

/** name=value elements of an option list; the first bare element is the implied type. */
function splitObjectList(text: string): { name?: string; value: string }[] {
  const out: { name?: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    let j = i;
    let value = '';
    let name: string | undefined;
    while (j < text.length) {
      const ch = text[j]!;
      if (ch === ',' && text[j + 1] === ',') {
        value += ',';
        j += 2;
        continue;
      }
      if (ch === ',') break;
      if (ch === '=' && name === undefined) {
        name = value;
        value = '';
        j++;
        continue;
      }
      value += ch;
      j++;
    }
    out.push(name === undefined ? { value } : { name, value });
    i = j + 1;
  }
  return out;
}

