/**
 * `secret` objects (--object secret,id=...,data=...|file=...[,format=raw|base64]) as QEMU's
 * crypto/secret.c loads them, kept by id for the options that name them (encrypt.key-secret).
 * Messages are QEMU's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { QemuError } from './create-opts.ts';
import type { PathPolicy } from '../tools/context.ts';

export interface SecretDefinition {
  id: string;
  data?: string;
  file?: string;
  format?: string;
  keyid?: string;
}

/** The secrets one process defined, by id. */
export class SecretStore {
  private readonly secrets = new Map<string, Uint8Array>();

  /** user_creatable_add for a secret: load its value now, as QEMU does. Throws QemuError. */
  define(def: SecretDefinition, ctx: { cwd: string; pathPolicy?: PathPolicy }): void {
    const format = def.format ?? 'raw';
    if (format !== 'raw' && format !== 'base64') throw new QemuError(`Parameter 'format' does not accept value '${format}'`);
    let raw: Uint8Array;
    if (def.data !== undefined && def.file !== undefined) throw new QemuError("'file' and 'data' are mutually exclusive");
    if (def.file !== undefined) {
      const abs = path.resolve(ctx.cwd, def.file);
      try {
        ctx.pathPolicy?.check(abs, 'read');
        raw = fs.readFileSync(abs);
      } catch (err) {
        const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : 'Permission denied';
        throw new QemuError(`Unable to read ${def.file}: Failed to open file \u201c${def.file}\u201d: ${reason}`);
      }
    } else if (def.data !== undefined) {
      raw = new TextEncoder().encode(def.data);
    } else {
      throw new QemuError("Either 'file' or 'data' must be provided");
    }
    if (def.keyid !== undefined) this.lookup(def.keyid);
    if (format === 'base64') raw = decodeBase64(raw);
    if (this.secrets.has(def.id)) throw new QemuError(`attempt to add duplicate property '${def.id}' to object (type 'container')`);
    this.secrets.set(def.id, raw);
  }

  /** qcrypto_secret_lookup: the secret's bytes, or "No secret with id '...'". */
  lookup(id: string): Uint8Array {
    const v = this.secrets.get(id);
    if (v === undefined) throw new QemuError(`No secret with id '${id}'`);
    return v;
  }

  has(id: string): boolean {
    return this.secrets.has(id);
  }
}

function decodeBase64(input: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(input);
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(text)) throw new QemuError('Base64 data contains invalid characters');
  return new Uint8Array(Buffer.from(text, 'base64'));
}
