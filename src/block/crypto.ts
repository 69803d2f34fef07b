/**
 * What the block layer needs from LUKS without encrypting anything: the validation of
 * `encrypt.*` create options (block_crypto_create_opts_init and qcrypto_block_luks_create's
 * checks, in QEMU 7.2's order and words) and the size of the LUKS header and key material
 * that precede the payload (qcrypto_block_calculate_payload_offset).
 */
import { QemuError } from './create-opts.ts';
import type { SecretStore } from './secrets.ts';

/** Key length in bytes of each QCryptoCipherAlgorithm. */
const CIPHER_KEY_LEN: ReadonlyMap<string, number> = new Map([
  ['aes-128', 16],
  ['aes-192', 24],
  ['aes-256', 32],
  ['des', 8],
  ['3des', 24],
  ['cast5-128', 16],
  ['serpent-128', 16],
  ['serpent-192', 24],
  ['serpent-256', 32],
  ['twofish-128', 16],
  ['twofish-192', 24],
  ['twofish-256', 32],
  ['sm4', 16],
]);
/** Algorithms the LUKS format has names for. */
const LUKS_CIPHERS = new Set(['aes-128', 'aes-192', 'aes-256', 'cast5-128', 'serpent-128', 'serpent-192', 'serpent-256', 'twofish-128', 'twofish-192', 'twofish-256']);
const CIPHER_MODES = ['ecb', 'cbc', 'xts', 'ctr'];
const IVGEN_ALGS = ['plain', 'plain64', 'essiv'];
const HASH_ALGS = ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512', 'ripemd160'];

const LUKS_SECTOR_SIZE = 512;
const LUKS_KEY_SLOT_OFFSET = 4096;
const LUKS_NUM_KEY_SLOTS = 8;
const LUKS_STRIPES = 4000;

/** LUKS creation options by QAPI member name (key-secret, cipher-alg, ...). */
export type LuksOptions = ReadonlyMap<string, string>;

function enumMember(opts: LuksOptions, name: string, values: readonly string[], dflt: string): string {
  const v = opts.get(name);
  if (v === undefined) return dflt;
  if (!values.includes(v)) throw new QemuError(`Parameter '${name}' does not accept value '${v}'`);
  return v;
}

/**
 * The payload offset in bytes of a LUKS volume created with these options: the header's
 * first 4 KiB, then eight key slots of anti-forensic split key material. `prefix` is how the
 * caller names the options in messages ("encrypt." for qcow2).
 */
export function luksPayloadOffset(opts: LuksOptions, prefix: string, secrets: SecretStore | undefined): number {
  // QCryptoBlockCreateOptionsLUKS members, in the visitor's order.
  const keySecret = opts.get('key-secret');
  const cipherAlg = enumMember(opts, 'cipher-alg', [...CIPHER_KEY_LEN.keys()], 'aes-256');
  const cipherMode = enumMember(opts, 'cipher-mode', CIPHER_MODES, 'xts');
  enumMember(opts, 'ivgen-alg', IVGEN_ALGS, 'plain64');
  enumMember(opts, 'ivgen-hash-alg', HASH_ALGS, 'sha256');
  enumMember(opts, 'hash-alg', HASH_ALGS, 'sha256');
  if (keySecret === undefined) throw new QemuError(`Parameter '${prefix}key-secret' is required for cipher`);
  if (!secrets) throw new QemuError(`No secret with id '${keySecret}'`);
  secrets.lookup(keySecret);
  if (!LUKS_CIPHERS.has(cipherAlg)) throw new QemuError(`Algorithm '${cipherAlg}' not supported`);
  let masterKeyLen = CIPHER_KEY_LEN.get(cipherAlg)!;
  if (cipherMode === 'xts') masterKeyLen *= 2;
  const headerSectors = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE;
  // cryptsetup's layout: key material in whole sectors, each slot aligned to the header size.
  const splitKeySectors = Math.ceil(Math.ceil((masterKeyLen * LUKS_STRIPES) / LUKS_SECTOR_SIZE) / headerSectors) * headerSectors;
  return (headerSectors + LUKS_NUM_KEY_SLOTS * splitKeySectors) * LUKS_SECTOR_SIZE;
}
