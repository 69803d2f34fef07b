/**
 * Format probing (find_image_format): the first bytes of an image decide its format. qcow2
 * is recognised by its magic and a version >= 2; other well-known formats are recognised so
 * that they are refused clearly instead of being treated as raw.
 */

/** How many bytes find_image_format reads for probing. */
export const PROBE_BUF_SIZE = 2048;

const OTHER_FORMATS: ReadonlyArray<[string, (b: Uint8Array) => boolean]> = [
  ['qcow', (b) => magic(b, 0, [0x51, 0x46, 0x49, 0xfb]) && u32be(b, 4) === 1],
  ['qed', (b) => magic(b, 0, [0x51, 0x45, 0x44, 0x00])],
  ['vmdk', (b) => magic(b, 0, [0x4b, 0x44, 0x4d, 0x56])],
  ['luks', (b) => magic(b, 0, [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])],
  ['vpc', (b) => ascii(b, 0, 'conectix')],
  ['vhdx', (b) => ascii(b, 0, 'vhdxfile')],
  ['vdi', (b) => b.length >= 0x44 && u32le(b, 0x40) === 0xbeda107f],
];

function magic(b: Uint8Array, at: number, bytes: number[]): boolean {
  return b.length >= at + bytes.length && bytes.every((v, i) => b[at + i] === v);
}

function ascii(b: Uint8Array, at: number, text: string): boolean {
  return magic(b, at, [...text].map((c) => c.charCodeAt(0)));
}

function u32be(b: Uint8Array, at: number): number {
  return b.length >= at + 4 ? ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0 : -1;
}

function u32le(b: Uint8Array, at: number): number {
  return b.length >= at + 4 ? ((b[at + 3]! << 24) | (b[at + 2]! << 16) | (b[at + 1]! << 8) | b[at]!) >>> 0 : -1;
}

/** qcow2_probe: magic "QFI\xfb" and version >= 2. */
export function isQcow2Header(b: Uint8Array): boolean {
  return magic(b, 0, [0x51, 0x46, 0x49, 0xfb]) && u32be(b, 4) >= 2;
}

/** The format QEMU would probe for these leading bytes. */
export function probeFormat(header: Uint8Array): string {
  if (isQcow2Header(header)) return 'qcow2';
  for (const [name, test] of OTHER_FORMATS) if (test(header)) return name;
  return 'raw';
}
