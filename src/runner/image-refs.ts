/**
 * Files that images in TEST_DIR name themselves: a qcow2 header's backing file and external
 * data file. A scenario's own arguments are checked before it runs, but these names come from
 * inside files the scenario wrote (a poked header, an amended image), and the real tools open
 * them without asking. Before each tool step the runner looks at every qcow2 image in TEST_DIR
 * and refuses to go on if one of them names a file outside it, so neither backend ever follows
 * such a name (the qemu backend's QEMU cannot be told what not to open).
 *
 * Names resolve as QEMU resolves them: a backing file relative to its image's directory
 * (protocol prefixes and json: filenames as QEMU parses them), a data file relative to the
 * tool's working directory (TEST_DIR).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cString } from '../qcow2/header.ts';
import { jsonStrings, realEscape } from '../scenario/paths.ts';

export interface EscapingRef {
  /** The image, relative to TEST_DIR. */
  image: string;
  kind: 'backing file' | 'data file';
  name: string;
  reason: string;
}

const QCOW_MAGIC = 0x514649fb;
const EXT_DATA_FILE = 0x44415441;
const INCOMPAT_DATA_FILE = 4;
const MAX_FILES = 2000;
const MAX_DEPTH = 8;

function u32(b: Buffer, o: number): number {
  return o + 4 <= b.length ? b.readUInt32BE(o) : 0;
}
function u64(b: Buffer, o: number): number {
  return u32(b, o) * 2 ** 32 + u32(b, o + 4);
}

/** Backing file and data file names in a qcow2 header, when `file` is one. */
export function namesInImage(file: string): { backing?: string; dataFile?: string } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return {};
  }
  try {
    const head = Buffer.alloc(112);
    const got = fs.readSync(fd, head, 0, head.length, 0);
    if (got < 72 || u32(head, 0) !== QCOW_MAGIC) return {};
    const version = u32(head, 4);
    const clusterBits = u32(head, 20);
    if ((version !== 2 && version !== 3) || clusterBits < 9 || clusterBits > 21) return {};
    const cs = 2 ** clusterBits;
    const first = Buffer.alloc(Math.min(cs, Math.max(0, fs.fstatSync(fd).size)));
    fs.readSync(fd, first, 0, first.length, 0);
    const out: { backing?: string; dataFile?: string } = {};
    const backingOffset = u64(first, 8);
    const backingSize = u32(first, 16);
    if (backingOffset > 0 && backingOffset < cs && backingSize > 0 && backingSize <= 1023) {
      const name = cString(first.subarray(backingOffset, Math.min(first.length, backingOffset + backingSize)));
      if (name !== '') out.backing = name;
    }
    if (version >= 3 && u32(first, 76) & INCOMPAT_DATA_FILE) {
      const headerLength = u32(first, 100);
      const end = backingOffset > 0 && backingOffset < cs ? backingOffset : first.length;
      let off = headerLength;
      for (let i = 0; i < 64 && off + 8 <= end; i++) {
        const type = u32(first, off);
        const len = u32(first, off + 4);
        if (type === 0) break;
        if (type === EXT_DATA_FILE) out.dataFile = first.subarray(off + 8, Math.min(end, off + 8 + len)).toString('utf8');
        off += 8 + Math.ceil(len / 8) * 8;
      }
    }
    return out;
  } catch {
    return {};
  } finally {
    fs.closeSync(fd);
  }
}

/** The host paths a name stands for, relative to `base` (QEMU's filename rules, loosely). */
function candidates(name: string, base: string): string[] {
  if (name.startsWith('json:')) return jsonStrings(name.slice(5)).filter((s) => s.includes('/') || s === '..').map((s) => path.resolve(base, s));
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(name);
  // "file:NAME" and friends; other protocols (nbd:, ...) name no host file to check.
  const rest = m ? (m[1] === 'file' || m[1] === 'host_device' || m[1] === 'host_cdrom' ? m[2]! : null) : name;
  if (rest === null) return [];
  return [path.resolve(base, rest)];
}

function qcowFiles(testDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > MAX_DEPTH || out.length >= MAX_FILES) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.isFile()) out.push(p);
      if (out.length >= MAX_FILES) return;
    }
  };
  walk(testDir, 0);
  return out;
}

/** Every name stored in an image in TEST_DIR that leads outside it. */
export function escapingImageRefs(testDir: string, realTestDir: string): EscapingRef[] {
  const found: EscapingRef[] = [];
  for (const file of qcowFiles(testDir)) {
    const names = namesInImage(file);
    const image = path.relative(testDir, file);
    const check = (kind: EscapingRef['kind'], name: string | undefined, base: string): void => {
      if (name === undefined) return;
      for (const target of candidates(name, base)) {
        const reason = realEscape(target, testDir, realTestDir);
        if (reason) {
          found.push({ image, kind, name, reason });
          return;
        }
      }
    };
    check('backing file', names.backing, path.dirname(file));
    check('data file', names.dataFile, testDir);
  }
  return found;
}
