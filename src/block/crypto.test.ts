/**
 * LUKS header sizes (qcrypto_block_calculate_payload_offset) and secret objects, with the
 * numbers and messages QEMU 7.2's qemu-img measure gives.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { luksPayloadOffset } from './crypto.ts';
import { SecretStore } from './secrets.ts';

function store(): SecretStore {
  const s = new SecretStore();
  s.define({ id: 'sec0', data: 'base' }, { cwd: '/' });
  return s;
}

describe('LUKS payload offset', () => {
  it('is 2 MiB minus the alignment slack for aes-256-xts and smaller for shorter keys', () => {
    // qemu-img measure: 2686976 - 589824 = 2 MiB once rounded up to 64 KiB clusters.
    expect(luksPayloadOffset(new Map([['key-secret', 'sec0']]), 'encrypt.', store())).toBe(4040 * 512);
    // aes-128-xts and aes-256-cbc both have 32-byte master keys: 1114112 in qemu-img measure.
    expect(luksPayloadOffset(new Map([['key-secret', 'sec0'], ['cipher-alg', 'aes-128']]), 'encrypt.', store())).toBe(2056 * 512);
    expect(luksPayloadOffset(new Map([['key-secret', 'sec0'], ['cipher-mode', 'cbc'], ['ivgen-alg', 'essiv']]), 'encrypt.', store())).toBe(2056 * 512);
  });

  it('words bad options, a missing key secret and an unknown secret as QEMU does', () => {
    expect(() => luksPayloadOffset(new Map(), 'encrypt.', store())).toThrow("Parameter 'encrypt.key-secret' is required for cipher");
    expect(() => luksPayloadOffset(new Map([['key-secret', 's1']]), 'encrypt.', store())).toThrow("No secret with id 's1'");
    expect(() => luksPayloadOffset(new Map([['key-secret', 'sec0'], ['cipher-alg', 'foo']]), 'encrypt.', store())).toThrow("Parameter 'cipher-alg' does not accept value 'foo'");
    expect(() => luksPayloadOffset(new Map([['key-secret', 'sec0'], ['cipher-alg', 'des']]), 'encrypt.', store())).toThrow("Algorithm 'des' not supported");
  });
});

describe('secret objects', () => {
  it('load data, base64 and files, and refuse what QEMU refuses', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-secret-'));
    try {
      fs.writeFileSync(path.join(dir, 'key'), 'abc');
      const s = new SecretStore();
      s.define({ id: 'a', data: 'eA==', format: 'base64' }, { cwd: dir });
      s.define({ id: 'b', file: 'key' }, { cwd: dir });
      expect(new TextDecoder().decode(s.lookup('a'))).toBe('x');
      expect(new TextDecoder().decode(s.lookup('b'))).toBe('abc');
      expect(() => s.define({ id: 'c' }, { cwd: dir })).toThrow("Either 'file' or 'data' must be provided");
      expect(() => s.define({ id: 'c', data: 'a', file: 'key' }, { cwd: dir })).toThrow("'file' and 'data' are mutually exclusive");
      expect(() => s.define({ id: 'c', data: '@@', format: 'base64' }, { cwd: dir })).toThrow('Base64 data contains invalid characters');
      expect(() => s.define({ id: 'a', data: 'y' }, { cwd: dir })).toThrow("attempt to add duplicate property 'a' to object (type 'container')");
      expect(() => s.define({ id: 'c', data: 'x', keyid: 'k' }, { cwd: dir })).toThrow("No secret with id 'k'");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
