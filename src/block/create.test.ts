import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bdrvImgCreate, QemuError, type ImgCreateRequest } from './create.ts';
import { hasHelpOption, isValidOptionList, splitOptionList } from './create-opts.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-create-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function create(req: Partial<ImgCreateRequest> & { filename: string }): { line: string; error?: QemuError } {
  let line = '';
  try {
    bdrvImgCreate(
      { cwd: dir, warn: () => {} },
      {
        fmt: 'qcow2',
        size: -1n,
        noBacking: false,
        quiet: false,
        formatting: (l) => {
          line = l;
        },
        openBacking: () => {
          throw new QemuError('no backing here');
        },
        ...req,
      },
    );
    return { line };
  } catch (err) {
    return { line, error: err as QemuError };
  }
}

describe('bdrv_img_create (Formatting lines captured from qemu-img 7.2)', () => {
  it('prints options in create_opts order with defaults', () => {
    expect(create({ filename: 'a.qcow2', size: 1048576n }).line).toBe(
      "Formatting 'a.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=1048576 lazy_refcounts=off refcount_bits=16\n",
    );
    expect(create({ filename: 'b.qcow2', size: 67108864n, options: 'data_file=b.data,data_file_raw=on' }).line).toBe(
      "Formatting 'b.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=67108864 data_file=b.data data_file_raw=on lazy_refcounts=off refcount_bits=16\n",
    );
    expect(create({ filename: 'c.raw', fmt: 'raw', size: 1048576n, options: 'preallocation=off,nocow=on,extent_size_hint=1M' }).line).toBe(
      "Formatting 'c.raw', fmt=raw size=1048576 nocow=on preallocation=off extent_size_hint=1048576\n",
    );
    expect(create({ filename: 'd.qcow2', size: 1048576n, options: 'lazy_refcounts=true,extended_l2=yes,cluster_size=64k,refcount_bits=0x10' }).line).toBe(
      "Formatting 'd.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=yes compression_type=zlib size=1048576 lazy_refcounts=true refcount_bits=16\n",
    );
  });
  it('creates the data file with the image size and writes QEMU layout sizes', () => {
    create({ filename: 'e.qcow2', size: 67108864n, options: 'data_file=e.data' });
    expect(fs.statSync(path.join(dir, 'e.qcow2')).size).toBe(196616);
    expect(fs.statSync(path.join(dir, 'e.data')).size).toBe(67108864);
    create({ filename: 'f.qcow2', size: 67108864n, options: 'data_file=f.data,data_file_raw=on' });
    expect(fs.statSync(path.join(dir, 'f.qcow2')).size).toBe(327680);
  });
  it('reports errors with QEMU wording, after the Formatting line, and removes the image', () => {
    const r = create({ filename: 'g.qcow2', size: 1048576n, options: 'data_file_raw=on' });
    expect(r.line).toContain("Formatting 'g.qcow2'");
    expect(r.error?.message).toBe('data-file-raw requires data-file');
    expect(fs.existsSync(path.join(dir, 'g.qcow2'))).toBe(false);
    expect(create({ filename: 'h.qcow2', size: 1048576n, options: 'bogus=1' }).error?.message).toBe("Invalid parameter 'bogus'");
    expect(create({ filename: 'h.qcow2', size: 1048576n, options: 'size=2M' }).error?.message).toBe('The image size must be specified only once');
    expect(create({ filename: 'h.qcow2' }).error?.message).toBe('Image creation needs a size parameter');
    expect(create({ filename: 'h.qcow2', size: 1048576n, options: 'compat=0.9' }).error?.message).toBe("Parameter 'version' does not accept value '0.9'");
    const big = create({ filename: 'h.qcow2', size: 4n << 50n });
    expect(big.error?.message).toBe("The image size is too large for file format 'qcow2' (try using a larger cluster size)");
    const sz = create({ filename: 'h.qcow2', size: 1048576n, options: 'cluster_size=1k5' }).error;
    expect(sz?.message).toBe("Parameter 'cluster_size' expects a non-negative number below 2^64");
    expect(sz?.hint).toBe('Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.\n');
  });
  it('parses option lists as QemuOpts does', () => {
    expect(isValidOptionList('a,')).toBe(false);
    expect(isValidOptionList('a,,')).toBe(true);
    expect(isValidOptionList(',a')).toBe(false);
    expect(hasHelpOption('cluster_size=1,help')).toBe(true);
    expect(hasHelpOption('cluster_size=help')).toBe(false);
    expect(splitOptionList('data_file=a,,b,nolazy_refcounts,x')).toEqual([
      { name: 'data_file', value: 'a,b' },
      { name: 'lazy_refcounts', value: 'off' },
      { name: 'x', value: 'on' },
    ]);
  });
});
