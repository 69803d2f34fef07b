/**
 * Hostile command lines for the drop-in tools (`qtest qemu-img ...`, `qtest qemu-io ...`):
 * sizes at and beyond 2^53 and 2^63, huge counts, unknown options and subcommands, malformed
 * `json:` filenames and option lists, empty names. qtest must answer each exactly as QEMU
 * 7.2 does (exit status, stdout, stderr). The answers were recorded from the real tools
 * (`node tests/robustness/record-dropin.ts` rewrites dropin-hostile.json); the test compares
 * qtest with the recording, and the recording with QEMU when QEMU is installed.
 *
 * Every case runs in a fresh directory holding t.qcow2 (1 MiB qcow2) and r.raw (1 MiB raw).
 */
export interface DropinCase {
  tool: 'qemu-img' | 'qemu-io';
  args: string[];
}

const img = (...args: string[]): DropinCase => ({ tool: 'qemu-img', args });
const io = (...args: string[]): DropinCase => ({ tool: 'qemu-io', args });
const json = (o: unknown): string => `json:${JSON.stringify(o)}`;
const qcowFile = { driver: 'qcow2', file: { driver: 'file', filename: 't.qcow2' } };

export const DROPIN_CASES: DropinCase[] = [
  // Sizes beyond what int64 and files hold.
  img('create', '-f', 'qcow2', 'x.qcow2', '99999999999999999999'),
  img('create', '-f', 'qcow2', 'x.qcow2', '9223372036854775807'),
  img('create', '-f', 'qcow2', 'x.qcow2', '9223372036854775296'),
  img('create', '-f', 'qcow2', 'x.qcow2', '8E'),
  img('create', '-f', 'qcow2', 'x.qcow2', '-1'),
  img('create', '-f', 'qcow2', '-o', 'size=18446744073709551616', 'x.qcow2'),
  img('create', '-f', 'raw', 'x.raw', '9223372036854775807'),
  img('create', '-f', 'raw', 'x.raw', '9223372036854775296'),
  img('create', '-f', 'raw', 'x.raw', '100T'),
  img('resize', 't.qcow2', '99999999999999999999'),
  img('resize', 't.qcow2', '+9E'),
  img('resize', 't.qcow2', '4611686018427387904'),
  img('resize', 't.qcow2', '9223372035781033984'),
  img('resize', '-f', 'raw', 'r.raw', '9223372036854775296'),
  img('resize', '-f', 'raw', 'r.raw', '9007199254740993'),
  img('resize', '-f', 'raw', 'r.raw', '100T'),
  img('measure', '--size', '99999999999999999999', '-O', 'qcow2'),
  img('measure', '--size', '9223372036854775807', '-O', 'qcow2'),
  io('-c', 'read 0 99999999999999999999', 't.qcow2'),
  io('-c', 'read 0 1E', 't.qcow2'),
  io('-c', 'write -z 0 9223372036854775807', 't.qcow2'),
  io('-c', 'aio_read 0 99999999999999999999', 't.qcow2'),
  io('-c', 'truncate 99999999999999999999', 't.qcow2'),
  io('-c', 'truncate 9223372035781033984', 't.qcow2'),
  io('-f', 'raw', '-c', 'truncate 100T', 'r.raw'),
  io('-c', 'readv 0 99999999999999999 1', 't.qcow2'),
  io('-c', 'alloc 0 99999999999999999999', 't.qcow2'),
  // Huge counts and bad numbers.
  img('bench', '-c', '99999999999999999999', 't.qcow2'),
  img('map', '--start-offset=-1', 't.qcow2'),
  img('map', '--max-length=99999999999999999999', 't.qcow2'),
  img('dd', 'if=t.qcow2', 'of=o.raw', 'count=-1'),
  img('dd', 'if=t.qcow2', 'of=o.raw', 'count=99999999999999999999'),
  img('dd', 'if=t.qcow2', 'of=o.raw', 'bs=0'),
  img('convert', '-m', '9999', '-O', 'raw', 't.qcow2', 'o.raw'),
  img('convert', '-S', '99999999999999999999', '-O', 'raw', 't.qcow2', 'o.raw'),
  io('-c', 'write -P 0x100 0 1', 't.qcow2'),
  io('-c', 'read -1 512', 't.qcow2'),
  io('-c', 'discard 0 -1', 't.qcow2'),
  io('-c', 'read -P 0 -s 99999999999 -l 1 0 512', 't.qcow2'),
  // Unknown options, commands and option values.
  img('--bogus'),
  img('frobnicate'),
  img('info', '--bogus', 't.qcow2'),
  img('info', '--output=yaml', 't.qcow2'),
  img('check', '-r', 'bogus', 't.qcow2'),
  img('create', '-f', 'qcow2', '-o', 'bogus=1', 'x.qcow2', '1M'),
  img('create', '-f', 'qcow2', '-o', 'cluster_size=3', 'x.qcow2', '1M'),
  img('create', '-f', 'qcow2', '-o', 'refcount_bits=128', 'x.qcow2', '1M'),
  img('create', '-f', 'nosuchfmt', 'x.img', '1M'),
  img('amend', '-o', 'compat=0.9', 't.qcow2'),
  img('snapshot', '-a', 'nosuch', 't.qcow2'),
  io('--bogus', 't.qcow2'),
  io('-c', 'frob', 't.qcow2'),
  io('-c', 'open -o driver=qcow2,file.filename=t.qcow2,bogus=1'),
  // Malformed json: filenames and option lists.
  img('info', 'json:{'),
  img('info', 'json:[]'),
  img('info', 'json:"string"'),
  img('info', 'json:{"a":1,"a":2}'),
  img('info', `${json(qcowFile)} trailing`),
  img('info', json({ driver: [1, 2] })),
  img('info', json({ driver: 'qcow2', file: { driver: 'file' } })),
  img('info', json({ ...qcowFile, bogus: 1 })),
  img('info', json({ file: { driver: 'nosuch' } })),
  img('info', json({ ...qcowFile, cache: { direct: 'maybe' } })),
  img('info', json({ driver: 'qcow2', file: { driver: 'file', filename: 't.qcow2', aio: 'bogus' } })),
  img('info', json({ driver: 'file', filename: '' })),
  img('info', '--image-opts', 'driver=file,filename='),
  img('info', '--image-opts', ',,,'),
  img('create', '-f', 'qcow2', '-o', 'backing_file=json:{', 'x.qcow2', '1M'),
  img('rebase', '-u', '-b', 'json:{', 't.qcow2'),
  io('-c', 'open json:{'),
  // Empty names.
  img('info', ''),
  img('create', '-f', 'qcow2', '', '1M'),
  img('create', '-f', 'qcow2', '-b', '', 'x.qcow2', '1M'),
  img('convert', '-O', 'raw', 't.qcow2', ''),
  io(''),
];
