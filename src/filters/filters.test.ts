import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../scenario/location.ts';
import { FilterChain } from './apply.ts';
import { loadFilterDir, parseFilter } from './load.ts';
import type { FilterDef, FilterRule, FilterVars } from './types.ts';
import { hasProgram } from '../qcow2/testing/qemu.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURES = path.join(ROOT, 'tests/harness/fixtures');
const defs = loadFilterDir(path.join(ROOT, 'filters'));
/** The TEST_DIR the fixtures were captured with; it contains the format name on purpose. */
const FIXTURE_DIR = '/tmp/qtd/dir-qcow2-x';

function chain(vars: Partial<FilterVars> = {}): FilterChain {
  return new FilterChain(defs, { TEST_DIR: FIXTURE_DIR, IMGFMT: 'qcow2', IMGPROTO: 'file', QEMU_PROG: 'qemu-system-x86_64', IMGOPTS: '', ...vars });
}
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

describe('filters declared in filters/*.yaml', () => {
  it('declares the iotests filter set', () => {
    expect([...defs.keys()].sort()).toEqual(['hmp', 'img_create', 'img_info', 'img_info_format_specific', 'imgfmt', 'qemu', 'qemu_img_check', 'qemu_img_map', 'qemu_io', 'qmp', 'testdir']);
  });
});

describe('img_create on raw QEMU 7.2 output', () => {
  it('matches _filter_img_create of QEMU 7.2 on every captured line', () => {
    expect(chain().apply(['img_create'], fixture('img_create.raw'))).toBe(fixture('img_create.expected'));
  });

  it('keeps only the whitelisted options of a Formatting line', () => {
    const raw = `Formatting '${FIXTURE_DIR}/t.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=67108864 lazy_refcounts=off refcount_bits=16\n`;
    expect(chain().apply(['img_create'], raw)).toBe("Formatting 'TEST_DIR/t.IMGFMT', fmt=IMGFMT size=67108864\n");
  });

  it('orders fmt < size < backing < data_file < encryption < preallocation, ties in C order', () => {
    const raw = `Formatting 'x', fmt=qcow2 preallocation=metadata encryption=off data_file_raw=on data_file=${FIXTURE_DIR}/d backing_fmt=raw size=1 backing_file=b refcount_bits=16\n`;
    expect(chain().apply(['img_create'], raw)).toBe("Formatting 'x', fmt=IMGFMT size=1 backing_file=b backing_fmt=raw data_file=TEST_DIR/d data_file_raw=on encryption=off preallocation=metadata\n");
  });

  it('reproduces the pipeline quirk when the last raw option is kept but sorts early', () => {
    // The option text's line end travels as NULs with the last option; QEMU's filter then
    // breaks the line there. Real qemu-img output always ends with a dropped option.
    const raw = "Formatting 'x', fmt=qcow2 backing_fmt=raw size=1 backing_file=b\n";
    expect(chain().apply(['img_create'], raw)).toBe("Formatting 'x', fmt=IMGFMT size=1 backing_file=b\n\n backing_fmt=raw\n");
  });

  it('drops encrypt.* options (7.2 keeps only "encryption")', () => {
    const raw = "Formatting 'x', fmt=qcow2 encrypt.format=luks encrypt.key-secret=sec0 encrypt.iter-time=10 cluster_size=65536 size=1048576\n";
    expect(chain().apply(['img_create'], raw)).toBe("Formatting 'x', fmt=IMGFMT size=1048576\n");
  });

  it('drops data_file options when IMGOPTS itself sets a data file', () => {
    const raw = "Formatting 'x', fmt=qcow2 size=1 data_file=/d data_file_raw=on\n";
    expect(chain({ IMGOPTS: 'data_file=$TEST_IMG.data' }).apply(['img_create'], raw)).toBe("Formatting 'x', fmt=IMGFMT size=1\n");
  });

  it('passes other lines through the filename substitutions only', () => {
    const raw = `qemu-img: ${FIXTURE_DIR}/t.qcow2: data-file-raw requires data-file\n`;
    expect(chain().apply(['img_create'], raw)).toBe('qemu-img: TEST_DIR/t.IMGFMT: data-file-raw requires data-file\n');
  });

  it('reads lines like `while read -r`: blanks trimmed, unterminated last line lost', () => {
    expect(chain().apply(['img_create'], '  a b  \n\tlast')).toBe('a b\n');
  });

  it.skipIf(!hasProgram('qemu-img'))('filters what the installed qemu-img prints as in 244.out', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-qcow2-filter-'));
    try {
      const create = (opts: string[], name: string): string =>
        execFileSync('qemu-img', ['create', '-f', 'qcow2', ...opts, path.join(dir, name), '64M'], { encoding: 'utf8' });
      const c = chain({ TEST_DIR: dir });
      expect(c.apply(['img_create'], create(['-o', `data_file=${dir}/t.qcow2.data,data_file_raw=on`], 't.qcow2'))).toBe(
        "Formatting 'TEST_DIR/t.IMGFMT', fmt=IMGFMT size=67108864 data_file=TEST_DIR/t.IMGFMT.data data_file_raw=on\n",
      );
      expect(c.apply(['img_create'], create(['-o', 'cluster_size=4096,lazy_refcounts=on,compat=1.1,preallocation=metadata'], 't.qcow2.src'))).toBe(
        "Formatting 'TEST_DIR/t.IMGFMT.src', fmt=IMGFMT size=67108864 preallocation=metadata\n",
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('qemu_io and testdir on raw QEMU 7.2 output', () => {
  it('replaces the statistics of every I/O report, CRs, prompts and shell notices', () => {
    expect(chain().apply(['qemu_io'], fixture('qemu_io.raw'))).toBe(fixture('qemu_io.expected'));
  });

  it('keeps the size before the statistics', () => {
    expect(chain().apply(['qemu_io'], '976.562 KiB, 1 ops; 00.00 sec (16.606 GiB/sec and 17830.7152 ops/sec)\n')).toBe(
      '976.562 KiB, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n',
    );
  });

  it('replaces TEST_DIR/ (with the slash) by TEST_DIR/', () => {
    expect(chain().apply(['qemu_io', 'testdir'], fixture('qemu_io.raw'))).toBe(fixture('qemu_io_testdir.expected'));
    expect(chain().apply(['testdir'], `${FIXTURE_DIR} ${FIXTURE_DIR}/a ${FIXTURE_DIR}/b\n`)).toBe(`${FIXTURE_DIR} TEST_DIR/a TEST_DIR/b\n`);
  });

  it('leaves an unterminated last line unterminated, as sed does', () => {
    expect(chain().apply(['testdir'], `a\n${FIXTURE_DIR}/x`)).toBe('a\nTEST_DIR/x');
  });
});

describe('qmp and qemu on raw QEMU 7.2 QMP sessions', () => {
  for (const name of ['qmp_qsd', 'qmp_system', 'qmp_pretty']) {
    it(`${name}: greeting, timestamps and CRs`, () => {
      expect(chain().apply(['qmp'], fixture(`${name}.raw`))).toBe(fixture(`${name}.qmp.expected`));
    });
    it(`${name}: the response chain of _send_qemu_cmd`, () => {
      expect(chain().apply(['testdir', 'qemu', 'qemu_io', 'qmp', 'hmp'], fixture(`${name}.raw`))).toBe(fixture(`${name}.chain.expected`));
    });
  }

  it('puts two blanks after "seconds":', () => {
    const line = '{"timestamp": {"seconds": 1795848128, "microseconds": 676785}, "event": "X"}\r\n';
    expect(chain().apply(['qmp'], line)).toBe('{"timestamp": {"seconds":  TIMESTAMP, "microseconds":  TIMESTAMP}, "event": "X"}\n');
  });
});

describe('imgfmt and qemu_img_check', () => {
  it('imgfmt replaces every occurrence of the format', () => {
    expect(chain().apply(['imgfmt'], '"driver": "qcow2", t.qcow2.qcow2\n')).toBe('"driver": "IMGFMT", t.IMGFMT.IMGFMT\n');
  });

  it('qemu_img_check drops statistics and the end offset', () => {
    const raw = 'No errors were found on the image.\n32/1024 = 3.12% allocated, 3.12% fragmented, 0.00% compressed clusters\nImage end offset: 327680\n';
    expect(chain().apply(['testdir', 'qemu_img_check'], raw)).toBe('No errors were found on the image.\n');
    expect(chain().apply(['qemu_img_check'], 'qemu-img: This image format does not support checks\n')).toBe('No errors were found on the image.\n');
  });
});

/** One inline rule as a scenario's `filters:` list holds it. */
function inline(rule: FilterRule): FilterDef {
  return { name: 'inline', lines: 'sed', rules: [rule], at: { file: 'x', line: 1, col: 1 } };
}

describe('qemu_img_map on qemu-img map output', () => {
  const human = `Offset          Length          Mapped to       File\n0               0x10000         0x50000         ${FIXTURE_DIR}/t.qcow2.base\n0x10000         0x10000         0x60000         ${FIXTURE_DIR}/t.qcow2\n`;
  const json = '[{ "start": 0, "length": 65536, "depth": 1, "present": true, "zero": false, "data": true, "offset": 327680},\n{ "start": 65536, "length": 131072, "depth": 0, "present": true, "zero": true, "data": false}]\n';

  it('drops the Mapped to column and JSON offsets, then TEST_DIR and IMGFMT', () => {
    expect(chain().apply(['qemu_img_map'], human)).toBe('Offset          Length          File\n0               0x10000         TEST_DIR/t.IMGFMT.base\n0x10000         0x10000         TEST_DIR/t.IMGFMT\n');
    expect(chain().apply(['qemu_img_map'], json)).toBe(
      '[{ "start": 0, "length": 65536, "depth": 1, "present": true, "zero": false, "data": true, "offset": OFFSET},\n{ "start": 65536, "length": 131072, "depth": 0, "present": true, "zero": true, "data": false}]\n',
    );
  });

  it('handles empty matches as GNU sed does (an empty match right after a match is skipped)', () => {
    const all = inline({ kind: 'replace', pattern: { regex: 'a*' }, with: 'X', global: true });
    expect(chain().apply([all], 'baaac\n')).toBe('XbXcX\n');
    expect(chain().apply(['qemu_img_map'], '0x1 0x2 0x3 0x4 0x5\n')).toBe('0x1 0x2 0x4 0x5\n');
  });

  it.skipIf(!hasProgram('sed'))('agrees with the sed pipeline of common.filter on the same text', () => {
    const text = `${human}${json}x a b c d\n  0 0 0\n`;
    const sed = execFileSync('sh', ['-c', `sed -e 's/\\([0-9a-fx]* *[0-9a-fx]* *\\)[0-9a-fx]* */\\1/g' -e 's/"offset": [0-9]\\+/"offset": OFFSET/g' -e 's/Mapped to *//' | sed -e "s#${FIXTURE_DIR}/#TEST_DIR/#g" | sed -e 's#qcow2#IMGFMT#g'`], { input: text, encoding: 'utf8' });
    expect(chain().apply(['qemu_img_map'], text)).toBe(sed);
  });
});

describe('img_info (_img_info)', () => {
  const info = `image: ${FIXTURE_DIR}/t.qcow2\nfile format: qcow2\nvirtual size: 64 MiB (67108864 bytes)\ndisk size: 196 KiB\ncluster_size: 65536\nFormat specific information:\n    compat: 1.1\n    compression type: zlib\n    lazy refcounts: false\n\nafter: x\nunterminated`;
  it('drops disk size and the format-specific block up to its blank line, and the unterminated last line', () => {
    expect(chain().apply(['img_info'], info)).toBe('image: TEST_DIR/t.IMGFMT\nfile format: IMGFMT\nvirtual size: 64 MiB (67108864 bytes)\ncluster_size: 65536\n\nafter: x\n');
  });
  it('keeps the block with --format-specific, compression type hidden', () => {
    expect(chain().apply(['img_info_format_specific'], info)).toContain('Format specific information:\n    compat: 1.1\n    compression type: COMPRESSION_TYPE\n');
  });
  it('drops the JSON "format-specific" object up to its closing brace', () => {
    const j = '{\n    "virtual-size": 1,\n    "format-specific": {\n        "type": "qcow2",\n        "data": {\n        }\n    },\n    "actual-size": 2,\n    "dirty-flag": false\n}\n';
    expect(chain().apply(['img_info'], j)).toBe('{\n    "virtual-size": 1,\n    "dirty-flag": false\n}\n');
  });
});

describe('inline rules: grep and tr', () => {
  it('grep keeps matching lines, -v the others, an unterminated last line gets its newline', () => {
    expect(chain().apply([inline({ kind: 'grep', pattern: { regex: '^b' }, invert: false, after: 0 })], 'a\nb1\nc\nb2')).toBe('b1\nb2\n');
    expect(chain().apply([inline({ kind: 'grep', pattern: { text: 'No errors' }, invert: true, after: 0 })], 'No errors were found\nLeaked\n')).toBe('Leaked\n');
  });
  it('grep -A prints context lines and -- between groups, like grep', () => {
    const rule = inline({ kind: 'grep', pattern: { regex: '66\\.67' }, invert: false, after: 1 });
    expect(chain().apply([rule], '1\n66.67\n2\n3\n66.67\n66.67\n4\n5\n')).toBe('66.67\n2\n--\n66.67\n66.67\n4\n');
  });
  it("tr maps characters (tr '\\r' '\\n')", () => {
    expect(chain().apply([inline({ kind: 'tr', from: '\r', to: '\n' })], 'a\rb\r\n')).toBe('a\nb\n\n');
  });
});

describe('filter files are validated with positions', () => {
  const problems = (text: string): string => {
    try {
      parseFilter('filters/bad.yaml', text);
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      return (err as Error).message;
    }
    throw new Error('expected an error');
  };
  it('unknown rule kind', () => {
    expect(problems('name: bad\nrules:\n  - substitute: { text: a, with: b }\n')).toMatch(/^filters\/bad\.yaml:3:5: unknown rule kind 'substitute'/);
  });
  it('invalid regex', () => {
    expect(problems('name: bad\nrules:\n  - delete: { regex: "a(" }\n')).toMatch(/^filters\/bad\.yaml:3:22: invalid regular expression/);
  });
  it('unknown variable', () => {
    expect(problems('name: bad\nrules:\n  - replace: { text: "$SOCK_DIR/", with: x }\n')).toMatch(/^filters\/bad\.yaml:3:22: unknown variable \$SOCK_DIR/);
  });
  it('name must match the file', () => {
    expect(problems('name: good\nrules: []\n')).toMatch(/^filters\/bad\.yaml:1:7: name 'good' does not match/);
  });
});
