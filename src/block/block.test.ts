/**
 * The block layer without QEMU: option syntax, QEMU's JSON reader and key order, open errors
 * as QEMU words them, request checks, flush semantics with blkdebug, and the qcow2 driver's
 * data-file ordering. (The differential suite in tests/diff compares the same behaviour with
 * real QEMU through qemu-io.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errno, ErrnoError } from '../errno.ts';
import { FileStorage } from '../storage/file.ts';
import { createQcow2 } from '../qcow2/index.ts';
import {
  BlockGraph,
  BlockOpenError,
  NodeStorage,
  OptionsError,
  QDict,
  flatten,
  isAllocated,
  openImage,
  parseJsonFilename,
  parseOptsString,
  parseQemuJson,
  qdictOrder,
  toJson,
} from './index.ts';

let dir: string;
const ctx = () => ({ cwd: dir });

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-block-'));
  fs.writeFileSync(path.join(dir, 'r.img'), Buffer.alloc(1 << 20));
  fs.writeFileSync(path.join(dir, 'one.img'), Buffer.alloc(1));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function openError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof BlockOpenError || err instanceof OptionsError) return err.message;
    throw err;
  }
  throw new Error('expected an open error');
}

describe('QDict order and JSON text', () => {
  it('iterates in QEMU hash-bucket order, as json: filenames show', () => {
    expect(qdictOrder(['driver', 'offset', 'file'])).toEqual(['offset', 'driver', 'file']);
    expect(qdictOrder(['driver', 'inject-error.0.event', 'inject-error.0.iotype', 'image'])).toEqual([
      'image',
      'driver',
      'inject-error.0.iotype',
      'inject-error.0.event',
    ]);
  });
  it('prints compact JSON with ", " and ": "', () => {
    const d = QDict.from([
      ['driver', 'raw'],
      ['offset', 512],
      ['file', QDict.from([['driver', 'file'], ['filename', 'a"b']])],
    ]);
    expect(toJson(d)).toBe('{"offset": 512, "driver": "raw", "file": {"driver": "file", "filename": "a\\"b"}}');
  });
  it('flattens nested dicts and lists into dotted keys', () => {
    const nested = parseQemuJson("{'a': {'b': 1}, 'l': [{'x': true}], 'e': {}}") as QDict;
    expect([...flatten(nested)]).toEqual([
      ['a.b', 1],
      ['l.0.x', true],
      ['e', new QDict()],
    ]);
  });
});

describe("QEMU's JSON reader", () => {
  const err = (text: string) => openError(() => parseQemuJson(text));
  it('accepts single-quoted strings and escapes', () => {
    expect(parseQemuJson("{'a': \"it's\", \"b\": 'x\"y', 'c': 'b\\u0041'}")).toEqual(
      QDict.from([['a', "it's"], ['b', 'x"y'], ['c', 'bA']]),
    );
  });
  it('reports errors with QEMU wording', () => {
    expect(err('{')).toBe('JSON parse error, premature EOI');
    expect(err("{'driver':}")).toBe('JSON parse error, expecting value');
    expect(err("{'a' 1}")).toBe('JSON parse error, missing : in object pair');
    expect(err('xx')).toBe("JSON parse error, invalid keyword 'xx'");
    expect(err('')).toBe('Expecting a JSON value');
    expect(err("{'a':1}}")).toBe('Expecting at most one JSON value');
    expect(err("{'a':1,'a':2}")).toBe('JSON parse error, duplicate key');
    expect(err("{'a")).toBe("JSON parse error, stray ''a'");
    expect(err("{'a':'\\x'}")).toBe('JSON parse error, invalid escape sequence in string');
    expect(err("{'a':0x10}")).toBe('JSON parse error, expected separator in dict');
    expect(err('{1:2}')).toBe('JSON parse error, key is not a string in object');
    expect(err("{'a':True}")).toBe("JSON parse error, stray 'T'");
    expect(err('[1,2')).toBe('JSON parse error, premature EOI');
  });
  it('json: filenames wrap errors and need an object', () => {
    expect(openError(() => parseJsonFilename('json:{'))).toBe('Could not parse the JSON options: JSON parse error, premature EOI');
    expect(openError(() => parseJsonFilename('json:[1]'))).toBe('Invalid JSON object given');
  });
});

describe('QemuOpts option strings', () => {
  it('splits key=value pairs, unescapes ",,", keeps the last duplicate', () => {
    const d = parseOptsString('driver=raw,file.filename=a,,b,x=1,x=2');
    expect([...d]).toEqual([
      ['driver', 'raw'],
      ['file.filename', 'a,b'],
      ['x', '2'],
    ]);
  });
  it('warns about short-form flags and refuses id in merged lists', () => {
    const warnings: string[] = [];
    const d = parseOptsString('foo,nobar', { onWarning: (w, h) => warnings.push(w, h) });
    expect([...d]).toEqual([
      ['foo', 'on'],
      ['bar', 'off'],
    ]);
    expect(warnings).toEqual([
      "short-form boolean option 'foo' deprecated",
      'Please use foo=on instead\n',
      "short-form boolean option 'nobar' deprecated",
      'Please use bar=off instead\n',
    ]);
    expect(openError(() => parseOptsString('id=x'))).toBe("Invalid parameter 'id'");
    expect([...parseOptsString('id=x,a=b', { mergeLists: false })]).toEqual([['a', 'b']]);
  });
  it('uses the implied name for a leading bare value', () => {
    expect([...parseOptsString('r.img,format=raw', { impliedName: 'file' })]).toEqual([
      ['file', 'r.img'],
      ['format', 'raw'],
    ]);
  });
});

describe('opening images', () => {
  it('gives QEMU errors for bad drivers, protocols, files and options', () => {
    expect(openError(() => openImage({ filename: 'nonexist', format: 'raw' }, ctx()))).toBe("Could not open 'nonexist': No such file or directory");
    expect(openError(() => openImage({ filename: 'r.img', format: 'nope' }, ctx()))).toBe("Unknown driver 'nope'");
    expect(openError(() => openImage({ filename: 'foo:bar' }, ctx()))).toBe("Unknown protocol 'foo'");
    expect(openError(() => openImage({ filename: '.', format: 'raw' }, ctx()))).toBe("Could not open '.': Is a directory");
    expect(openError(() => openImage({ options: QDict.from([['filename', 'r.img']]) }, ctx()))).toBe('Must specify either driver or file');
    expect(openError(() => openImage({ filename: "json:{'driver':'raw','file':{'driver':'file','filename':'r.img'},'foo':1}" }, ctx()))).toBe(
      "Block format 'raw' does not support the option 'foo'",
    );
    expect(openError(() => openImage({ options: QDict.from([['driver', 'file'], ['filename', 'r.img'], ['bar', 'x']]) }, ctx()))).toBe(
      "Block protocol 'file' doesn't support the option 'bar'",
    );
    expect(openError(() => openImage({ options: QDict.from([['driver', 'raw'], ['file.filename', 'r.img']]), filename: 'r.img' }, ctx()))).toBe(
      "Can't specify 'file' and 'filename' options at the same time",
    );
    expect(openError(() => openImage({ options: QDict.from([['driver', 'qcow2']]) }, ctx()))).toBe('A block device must be specified for "file"');
    expect(openError(() => openImage({ options: QDict.from([['driver', 'null-co'], ['node-name', '1a']]) }, ctx()))).toBe("Invalid node-name: '1a'");
  });

  it('warns when probing guesses raw for a writable image', () => {
    let stderr = '';
    const blk = openImage({ filename: 'r.img' }, { cwd: dir, stderr: (t) => (stderr += t) });
    expect(blk.root.driver).toBe('raw');
    expect(stderr).toContain("WARNING: Image format was not specified for 'r.img' and probing guessed raw.");
    // Writing a qcow2 magic into sector 0 of a probed raw image is refused.
    expect(() => blk.write(0, Buffer.from('QFI\xfb\x00\x00\x00\x03', 'latin1'))).toThrow(ErrnoError);
    blk.close();
  });

  it('names nodes by plain filename or json: as bdrv_refresh_filename does', () => {
    const a = openImage({ filename: 'r.img', format: 'raw' }, ctx());
    expect(a.root.filename).toBe('r.img');
    a.close();
    const b = openImage({ filename: "json:{'driver':'raw','offset':512,'file':{'driver':'file','filename':'r.img'}}" }, ctx());
    expect(b.root.filename).toBe('json:{"offset": 512, "driver": "raw", "file": {"driver": "file", "filename": "r.img"}}');
    expect(b.length()).toBe((1 << 20) - 512);
    b.close();
    const c = openImage({ filename: 'null-co://', readOnly: true }, ctx());
    expect(c.root.filename).toBe('null-co://');
    c.close();
  });

  it('counts lengths in whole sectors', () => {
    const blk = openImage({ filename: 'one.img', format: 'raw' }, ctx());
    expect(blk.length()).toBe(512);
    expect(new NodeStorage(blk.root.children.get('file')!).size()).toBe(1);
    blk.close();
  });

  it('registers node names per graph and refuses duplicates', () => {
    const graph = new BlockGraph();
    const blk = openImage({ options: QDict.from([['driver', 'null-co'], ['node-name', 'n1']]) }, { cwd: dir, graph });
    expect(graph.get('n1')).toBe(blk.root);
    expect(openError(() => openImage({ options: QDict.from([['driver', 'null-co'], ['node-name', 'n1']]) }, { cwd: dir, graph }))).toBe(
      "Duplicate nodes with node-name='n1'",
    );
    blk.close();
    expect(graph.get('n1')).toBeUndefined();
  });
});

describe('requests', () => {
  it('fails requests beyond the end with EIO, allows zero-length reads at the end', () => {
    const blk = openImage({ filename: 'r.img', format: 'raw' }, ctx());
    const eio = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        return (err as ErrnoError).errno;
      }
      return 0;
    };
    expect(eio(() => blk.read(1 << 20, new Uint8Array(1)))).toBe(Errno.EIO);
    expect(eio(() => blk.write((1 << 20) - 1, new Uint8Array(2)))).toBe(Errno.EIO);
    expect(eio(() => blk.discard(0, 2 << 20))).toBe(Errno.EIO);
    expect(eio(() => blk.read(1 << 20, new Uint8Array(0)))).toBe(0);
    blk.close();
  });

  it('null-co leaves read buffers alone unless read-zeroes is on', () => {
    const blk = openImage({ options: QDict.from([['driver', 'null-co']]) }, ctx());
    const buf = new Uint8Array(4).fill(0xab);
    blk.read(0, buf);
    expect([...buf]).toEqual([0xab, 0xab, 0xab, 0xab]);
    expect(isAllocated(blk.root, 0, 512).allocated).toBe(false);
    blk.close();
  });
});

describe('blkdebug', () => {
  const flushRule = "'inject-error':[{'event':'none','iotype':'flush'}]";
  it('fails a flush only after something was written (writeback)', () => {
    const blk = openImage(
      { filename: `json:{'driver':'blkdebug',${flushRule},'image':{'driver':'file','filename':'r.img'}}`, cache: { direct: false, noFlush: false, writethrough: false } },
      ctx(),
    );
    expect(() => blk.flush()).not.toThrow();
    blk.write(0, new Uint8Array(512));
    expect(() => blk.flush()).toThrow(ErrnoError);
    blk.close();
  });

  it('with writethrough, write-zeroes fail (emulated FUA) but writes pass FUA to the file', () => {
    const blk = openImage({ filename: `json:{'driver':'blkdebug',${flushRule},'image':{'driver':'file','filename':'r.img'}}` }, ctx());
    expect(() => blk.write(0, new Uint8Array(512))).not.toThrow();
    expect(() => blk.writeZeroes(0, 512)).toThrow(ErrnoError);
    blk.close();
  });

  it('arms read_aio rules from a raw parent and honours once', () => {
    const blk = openImage(
      { options: parseOptsString('driver=raw,file.driver=blkdebug,file.image.filename=r.img,file.inject-error.0.event=read_aio,file.inject-error.0.once=on') },
      ctx(),
    );
    expect(() => blk.read(0, new Uint8Array(512))).toThrow(ErrnoError);
    expect(() => blk.read(0, new Uint8Array(512))).not.toThrow();
    blk.close();
  });

  it('validates rules', () => {
    expect(openError(() => openImage({ options: parseOptsString('driver=blkdebug,image.filename=r.img,inject-error.0.event=bogus') }, ctx()))).toBe(
      'invalid parameter value: bogus',
    );
    expect(openError(() => openImage({ options: parseOptsString('driver=blkdebug,image.filename=r.img,inject-error.0.iotype=read') }, ctx()))).toBe(
      'Missing event name for rule',
    );
    expect(openError(() => openImage({ options: parseOptsString('driver=blkdebug') }, ctx()))).toBe('A block device must be specified for "image"');
  });
});

describe('qcow2 driver', () => {
  function makeImage(name: string, dataFile?: string): void {
    const file = FileStorage.open(name, { create: true, truncate: true }, path.join(dir, name));
    let data: FileStorage | undefined;
    if (dataFile) data = FileStorage.open(dataFile, { create: true, truncate: true }, path.join(dir, dataFile));
    createQcow2(file, { size: 64 << 20, dataFile }, data);
    file.close();
    data?.close();
  }

  it('opens an explicit data-file child before the feature check, as QEMU does', () => {
    makeImage('plain.qcow2');
    expect(openError(() => openImage({ filename: 'plain.qcow2', options: parseOptsString('data-file.filename=inexistent') }, ctx()))).toBe(
      "Could not open 'inexistent': No such file or directory",
    );
    expect(openError(() => openImage({ filename: 'plain.qcow2', options: parseOptsString('data-file.filename=r.img') }, ctx()))).toBe(
      "'data-file' can only be set for images with an external data file",
    );
  });

  it('reads and writes through the data file named in the header', () => {
    makeImage('t.qcow2', 't.qcow2.data');
    const blk = openImage({ filename: 't.qcow2', format: 'qcow2', cache: { direct: false, noFlush: false, writethrough: false } }, ctx());
    expect(blk.root.filename).toBe('t.qcow2');
    expect(blk.root.children.get('data-file')?.filename).toBe('t.qcow2.data');
    blk.write(1 << 20, new Uint8Array(65536).fill(0x11));
    const s = blk.blockStatus(1 << 20, 65536);
    expect(s).toMatchObject({ allocated: true, data: true, offset: 1 << 20 });
    expect(s.file).toBe(blk.root.children.get('data-file'));
    expect(() => blk.writeCompressed(0, new Uint8Array(65536))).toThrow(ErrnoError);
    blk.close();
  });
});
