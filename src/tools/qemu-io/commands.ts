/**
 * qemu-io's command table and commands (qemu-io-cmds.c and the open/close/quit commands of
 * qemu-io.c in QEMU 7.2). A command returns 0 or a negative errno; any negative return makes
 * the process exit with status 1. Texts and streams are the real tool's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BDRV_REQUEST_MAX_BYTES, BlockOpenError, OptionsError, isAllocated, parseCacheMode, parseDiscardMode, isValidAioMode, parseOptsString, QDict } from '../../block/index.ts';
import type { Prealloc } from '../../block/types.ts';
import { OptionLoop } from '../common/getopt.ts';
import { filledBuffer, isFilledWith } from '../../block/zero.ts';
import { humanSize } from '../common/human.ts';
import { cvtnum, cvtnumErrorText, strtolFull } from '../common/numbers.ts';
import { EXTENDED_HELP } from './help.ts';
import { dumpQObject } from './dump.ts';
import { formatSpecific } from '../qemu-img/engine.ts';
import { dumpBuffer, elapsed, now, parsePattern, report } from './report.ts';
import { IoSession, errnoOf, failedText, type OpenSettings } from './session.ts';

type CmdResult = number | Promise<number>;

export interface CmdInfo {
  name: string;
  altname?: string;
  run: (s: IoSession, argv: string[]) => CmdResult;
  argmin: number;
  argmax: number;
  /** CMD_NOFILE_OK */
  nofileOk?: boolean;
  /** CMD_FLAG_GLOBAL */
  global?: boolean;
  /** Needs write (or resize) permission on the image. */
  needsWrite?: boolean;
  args?: string;
  oneline: string;
}

const INT_MAX = 2 ** 31 - 1;

function usageLine(ct: CmdInfo): string {
  return `${ct.name} ${ct.args ?? '(null)'} -- ${ct.oneline}\n`;
}

/** qemuio_command_usage(): the one-line usage on stdout, and -EINVAL. */
function usage(s: IoSession, ct: CmdInfo): number {
  s.out(usageLine(ct));
  return -Errno.EINVAL;
}

/** getopt over a command's words; the command name is argv[0] in its error messages. */
function cmdGetopt(s: IoSession, argv: string[], spec: string): OptionLoop {
  return new OptionLoop([...argv], spec, [], s.ctx.env.POSIXLY_CORRECT !== undefined, (m) => s.err(m));
}

function patternError(s: IoSession, arg: string): number {
  s.out(`${arg} is not a valid pattern byte\n`);
  return -Errno.EINVAL;
}

/** qemu_io_alloc: a buffer of `len` bytes filled with the pattern byte. */
function allocBuffer(len: number, fill: number): Uint8Array {
  return filledBuffer(len, fill);
}

/** Whether any byte of buf[from, from + len) differs from the pattern. */
function firstMismatch(buf: Uint8Array, from: number, len: number, pattern: number): boolean {
  return !isFilledWith(buf, pattern, from, from + len);
}

// ---- read / readv / write / writev ----

function readCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('read')!;
  let machine = false;
  let quiet = false;
  let verbose = false;
  let Pflag = false;
  let sflag = false;
  let lflag = false;
  let bflag = false;
  let pattern = 0;
  let patternOffset = 0;
  let patternCount = 0;
  const g = cmdGetopt(s, argv, 'bCl:pP:qs:v');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'b':
        bflag = true;
        break;
      case 'C':
        machine = true;
        break;
      case 'l': {
        lflag = true;
        const n = s.number(o.arg!);
        if (!n.ok) return n.ret;
        patternCount = n.value;
        break;
      }
      case 'p':
        break;
      case 'P': {
        Pflag = true;
        const p = parsePattern(o.arg!);
        if (p === null) return patternError(s, o.arg!);
        pattern = p;
        break;
      }
      case 'q':
        quiet = true;
        break;
      case 's': {
        sflag = true;
        const n = s.number(o.arg!);
        if (!n.ok) return n.ret;
        patternOffset = n.value;
        break;
      }
      case 'v':
        verbose = true;
        break;
      default:
        return usage(s, ct);
    }
  }
  const rest = g.operands();
  if (rest.length !== 2) return usage(s, ct);
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  const cnt = s.number(rest[1]!);
  if (!cnt.ok) return cnt.ret;
  const offset = off.value;
  const count = cnt.value;
  if (count > BDRV_REQUEST_MAX_BYTES) {
    s.out(`length cannot exceed ${BDRV_REQUEST_MAX_BYTES}, given ${rest[1]}\n`);
    return -Errno.EINVAL;
  }
  if (!Pflag && (lflag || sflag)) return usage(s, ct);
  if (!lflag) patternCount = count - patternOffset;
  if (patternCount < 0 || patternCount + patternOffset > count) {
    s.out('pattern verification range exceeds end of read data\n');
    return -Errno.EINVAL;
  }
  if (bflag) {
    if (offset % 512 !== 0) {
      s.out(`${offset} is not a sector-aligned value for 'offset'\n`);
      return -Errno.EINVAL;
    }
    if (count % 512 !== 0) {
      s.out(`${count} is not a sector-aligned value for 'count'\n`);
      return -Errno.EINVAL;
    }
  }
  const blk = s.blk!;
  const buf = allocBuffer(count, 0xab);
  const t1 = now();
  let errno = 0;
  try {
    if (count > INT_MAX) throw new ErrnoError(Errno.ERANGE);
    if (bflag) loadVmState(s, offset, buf);
    else blk.read(offset, buf);
  } catch (err) {
    errno = errnoOf(err);
  }
  if (!errno) s.pollAio();
  const t2 = now();
  if (errno) {
    s.out(failedText('read', errno));
    return -errno;
  }
  let ret = 0;
  if (Pflag && firstMismatch(buf, patternOffset, patternCount, pattern)) {
    s.out(`Pattern verification failed at offset ${offset + patternOffset}, ${patternCount} bytes\n`);
    ret = -Errno.EINVAL;
  }
  if (quiet) return ret;
  if (verbose) s.out(dumpBuffer(buf, offset));
  s.out(report('read', elapsed(t1, t2), offset, count, count, 1, machine));
  return ret;
}

/** VM state lives outside the guest disk; only formats with a vmstate area support it. */
function loadVmState(s: IoSession, offset: number, buf: Uint8Array): void {
  const node = s.blk!.root as unknown as { loadVmState?: (o: number, b: Uint8Array) => void };
  if (!node.loadVmState) throw new ErrnoError(Errno.ENOTSUP);
  node.loadVmState(offset, buf);
}

function saveVmState(s: IoSession, offset: number, data: Uint8Array): void {
  const node = s.blk!.root as unknown as { saveVmState?: (o: number, b: Uint8Array) => void };
  if (!node.saveVmState) throw new ErrnoError(Errno.ENOTSUP);
  node.saveVmState(offset, data);
}

/** create_iovec(): the lengths of a vectored request; null after printing an error. */
function iovecLengths(s: IoSession, args: string[]): number[] | null {
  const sizes: number[] = [];
  let total = 0;
  for (const arg of args) {
    const n = s.number(arg);
    if (!n.ok) return null;
    if (n.value > BDRV_REQUEST_MAX_BYTES) {
      s.out(`Argument '${arg}' exceeds maximum size ${BDRV_REQUEST_MAX_BYTES}\n`);
      return null;
    }
    if (total > BDRV_REQUEST_MAX_BYTES - n.value) {
      s.out(`The total number of bytes exceed the maximum size ${BDRV_REQUEST_MAX_BYTES}\n`);
      return null;
    }
    sizes.push(n.value);
    total += n.value;
  }
  return sizes;
}

function readvCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('readv')!;
  let machine = false;
  let quiet = false;
  let verbose = false;
  let Pflag = false;
  let pattern = 0;
  const g = cmdGetopt(s, argv, 'CP:qv');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'C':
        machine = true;
        break;
      case 'P': {
        Pflag = true;
        const p = parsePattern(o.arg!);
        if (p === null) return patternError(s, o.arg!);
        pattern = p;
        break;
      }
      case 'q':
        quiet = true;
        break;
      case 'v':
        verbose = true;
        break;
      default:
        return usage(s, ct);
    }
  }
  const rest = g.operands();
  if (rest.length < 2) return usage(s, ct);
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  const sizes = iovecLengths(s, rest.slice(1));
  if (!sizes) return -Errno.EINVAL;
  const total = sizes.reduce((a, b) => a + b, 0);
  const buf = allocBuffer(total, 0xab);
  const t1 = now();
  let errno = 0;
  try {
    s.blk!.read(off.value, buf);
  } catch (err) {
    errno = errnoOf(err);
  }
  if (!errno) s.pollAio();
  const t2 = now();
  if (errno) {
    s.out(failedText('readv', errno));
    return -errno;
  }
  let ret = 0;
  if (Pflag && firstMismatch(buf, 0, total, pattern)) {
    s.out(`Pattern verification failed at offset ${off.value}, ${total} bytes\n`);
    ret = -Errno.EINVAL;
  }
  if (quiet) return ret;
  if (verbose) s.out(dumpBuffer(buf, off.value));
  s.out(report('read', elapsed(t1, t2), off.value, total, total, 1, machine));
  return ret;
}

/** qemu_io_alloc_from_file(): the file's bytes repeated to fill `len`; null after an error. */
function bufferFromFile(s: IoSession, len: number, fileName: string): Uint8Array | null {
  let data: Buffer;
  try {
    const abs = path.resolve(s.ctx.cwd, fileName);
    s.ctx.pathPolicy?.check(abs, 'read');
    const fd = fs.openSync(abs, 'r');
    try {
      data = Buffer.alloc(len);
      let got = 0;
      while (got < len) {
        const n = fs.readSync(fd, data, got, len - got, null);
        if (n === 0) break;
        got += n;
      }
      data = data.subarray(0, got);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const errno = code && code in Errno ? Errno[code as keyof typeof Errno] : undefined;
    s.err(errno !== undefined ? `${fileName}: ${strerror(errno)}\n` : `${fileName}: ${err instanceof Error ? err.message : String(err)}\n`);
    return null;
  }
  if (data.length === 0) {
    s.err(`${fileName}: file is empty\n`);
    return null;
  }
  const buf = new Uint8Array(len);
  for (let p = 0; p < len; p += data.length) buf.set(data.subarray(0, Math.min(data.length, len - p)), p);
  return buf;
}

function writeCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('write')!;
  let machine = false;
  let quiet = false;
  let bflag = false;
  let Pflag = false;
  let zflag = false;
  let cflag = false;
  let sflag = false;
  let fua = false;
  let noFallback = false;
  let unmap = false;
  let pattern = 0xcd;
  let fileName = '';
  const g = cmdGetopt(s, argv, 'bcCfnpP:qs:uz');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'b':
        bflag = true;
        break;
      case 'c':
        cflag = true;
        break;
      case 'C':
        machine = true;
        break;
      case 'f':
        fua = true;
        break;
      case 'n':
        noFallback = true;
        break;
      case 'p':
        break;
      case 'P': {
        Pflag = true;
        const p = parsePattern(o.arg!);
        if (p === null) return patternError(s, o.arg!);
        pattern = p;
        break;
      }
      case 'q':
        quiet = true;
        break;
      case 's':
        sflag = true;
        fileName = o.arg!;
        break;
      case 'u':
        unmap = true;
        break;
      case 'z':
        zflag = true;
        break;
      default:
        return usage(s, ct);
    }
  }
  const rest = g.operands();
  if (rest.length !== 2) return usage(s, ct);
  const fail = (msg: string): number => {
    s.out(msg);
    return -Errno.EINVAL;
  };
  if (bflag && zflag) return fail('-b and -z cannot be specified at the same time\n');
  if (fua && (bflag || cflag)) return fail('-f and -b or -c cannot be specified at the same time\n');
  if (noFallback && !zflag) return fail('-n requires -z to be specified\n');
  if (unmap && !zflag) return fail('-u requires -z to be specified\n');
  if (Number(zflag) + Number(Pflag) + Number(sflag) > 1) return fail('Only one of -z, -P, and -s can be specified at the same time\n');
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  const cnt = s.number(rest[1]!);
  if (!cnt.ok) return cnt.ret;
  const offset = off.value;
  const count = cnt.value;
  if (count > BDRV_REQUEST_MAX_BYTES && !noFallback) {
    return fail(`length cannot exceed ${BDRV_REQUEST_MAX_BYTES} without -n, given ${rest[1]}\n`);
  }
  if (bflag || cflag) {
    if (offset % 512 !== 0) return fail(`${offset} is not a sector-aligned value for 'offset'\n`);
    if (count % 512 !== 0) return fail(`${count} is not a sector-aligned value for 'count'\n`);
  }
  let buf: Uint8Array | undefined;
  if (!zflag) {
    if (sflag) {
      const b = bufferFromFile(s, count, fileName);
      if (!b) return -Errno.EINVAL;
      buf = b;
    } else {
      buf = allocBuffer(count, pattern);
    }
  }
  const blk = s.blk!;
  const t1 = now();
  let errno = 0;
  try {
    if (bflag) {
      if (count > INT_MAX) throw new ErrnoError(Errno.ERANGE);
      saveVmState(s, offset, buf!);
    } else if (zflag) {
      blk.writeZeroes(offset, count, { unmap, fua });
    } else if (cflag) {
      if (count > BDRV_REQUEST_MAX_BYTES) throw new ErrnoError(Errno.ERANGE);
      blk.writeCompressed(offset, buf!);
    } else {
      if (count > INT_MAX) throw new ErrnoError(Errno.ERANGE);
      blk.write(offset, buf!, { fua });
    }
  } catch (err) {
    errno = errnoOf(err);
  }
  if (!errno) s.pollAio();
  const t2 = now();
  if (errno) {
    s.out(failedText('write', errno));
    return -errno;
  }
  if (!quiet) s.out(report('wrote', elapsed(t1, t2), offset, count, count, 1, machine));
  return 0;
}

function writevCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('writev')!;
  let machine = false;
  let quiet = false;
  let fua = false;
  let pattern = 0xcd;
  const g = cmdGetopt(s, argv, 'CfqP:');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'C':
        machine = true;
        break;
      case 'f':
        fua = true;
        break;
      case 'q':
        quiet = true;
        break;
      case 'P': {
        const p = parsePattern(o.arg!);
        if (p === null) return patternError(s, o.arg!);
        pattern = p;
        break;
      }
      default:
        return usage(s, ct);
    }
  }
  const rest = g.operands();
  if (rest.length < 2) return usage(s, ct);
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  const sizes = iovecLengths(s, rest.slice(1));
  if (!sizes) return -Errno.EINVAL;
  const total = sizes.reduce((a, b) => a + b, 0);
  const buf = allocBuffer(total, pattern);
  const t1 = now();
  let errno = 0;
  try {
    s.blk!.write(off.value, buf, { fua });
  } catch (err) {
    errno = errnoOf(err);
  }
  if (!errno) s.pollAio();
  const t2 = now();
  if (errno) {
    s.out(failedText('writev', errno));
    return -errno;
  }
  if (!quiet) s.out(report('wrote', elapsed(t1, t2), off.value, total, total, 1, machine));
  return 0;
}

// ---- aio ----

function aioReadCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('aio_read')!;
  let machine = false;
  let quiet = false;
  let verbose = false;
  let Pflag = false;
  let pattern = 0;
  const g = cmdGetopt(s, argv, 'CP:iqv');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'C':
        machine = true;
        break;
      case 'P': {
        Pflag = true;
        const p = parsePattern(o.arg!);
        if (p === null) return patternError(s, o.arg!);
        pattern = p;
        break;
      }
      case 'i':
        s.out('injecting invalid read request\n');
        return 0;
      case 'q':
        quiet = true;
        break;
      case 'v':
        verbose = true;
        break;
      default:
        return usage(s, ct);
    }
  }
  const rest = g.operands();
  if (rest.length < 2) return usage(s, ct);
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  const sizes = iovecLengths(s, rest.slice(1));
  if (!sizes) return -Errno.EINVAL;
  const total = sizes.reduce((a, b) => a + b, 0);
  const buf = allocBuffer(total, 0xab);
  const t1 = now();
  let errno = 0;
  s.beginAio(off.value, 0);
  try {
    s.blk!.read(off.value, buf);
  } catch (err) {
    errno = errnoOf(err);
  }
  const t2 = now();
  // The I/O is done now; its result is reported when QEMU's main loop next runs.
  s.deferAio(errno !== 0, () => {
    if (errno) {
      s.out(failedText('readv', errno));
      return;
    }
    if (Pflag && firstMismatch(buf, 0, total, pattern)) {
      s.out(`Pattern verification failed at offset ${off.value}, ${total} bytes\n`);
    }
    if (quiet) return;
    if (verbose) s.out(dumpBuffer(buf, off.value));
    s.out(report('read', elapsed(t1, t2), off.value, total, total, 1, machine));
  }, off.value, total);
  return 0;
}

function aioWriteCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('aio_write')!;
  let machine = false;
  let quiet = false;
  let fua = false;
  let unmap = false;
  let zflag = false;
  let pattern = 0xcd;
  const g = cmdGetopt(s, argv, 'CfiqP:uz');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'C':
        machine = true;
        break;
      case 'f':
        fua = true;
        break;
      case 'q':
        quiet = true;
        break;
      case 'u':
        unmap = true;
        break;
      case 'P': {
        const p = parsePattern(o.arg!);
        if (p === null) return patternError(s, o.arg!);
        pattern = p;
        break;
      }
      case 'i':
        s.out('injecting invalid write request\n');
        return 0;
      case 'z':
        zflag = true;
        break;
      default:
        return usage(s, ct);
    }
  }
  const rest = g.operands();
  if (rest.length < 2) return usage(s, ct);
  if (zflag && rest.length !== 2) {
    s.out('-z supports only a single length parameter\n');
    return -Errno.EINVAL;
  }
  if (unmap && !zflag) {
    s.out('-u requires -z to be specified\n');
    return -Errno.EINVAL;
  }
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  let total: number;
  // QEMU never starts the clock for -z, so its "time" is the monotonic clock itself.
  let t1 = 0n;
  let errno = 0;
  if (zflag) {
    const cnt = s.number(rest[1]!);
    if (!cnt.ok) return cnt.ret;
    total = cnt.value;
    s.beginAio(off.value, 0);
    try {
      s.blk!.writeZeroes(off.value, total, { unmap, fua });
    } catch (err) {
      errno = errnoOf(err);
    }
  } else {
    const sizes = iovecLengths(s, rest.slice(1));
    if (!sizes) return -Errno.EINVAL;
    total = sizes.reduce((a, b) => a + b, 0);
    const buf = allocBuffer(total, pattern);
    t1 = now();
    s.beginAio(off.value, total);
    try {
      s.blk!.write(off.value, buf, { fua });
    } catch (err) {
      errno = errnoOf(err);
    }
  }
  const t2 = now();
  s.deferAio(errno !== 0, () => {
    if (errno) s.out(failedText('aio_write', errno));
    else if (!quiet) s.out(report('wrote', elapsed(t1, t2), off.value, total, total, 1, machine));
  }, off.value, total);
  return 0;
}

// ---- other image commands ----

function flushCmd(s: IoSession): number {
  const syncs = s.blk!.dirtySinceFlush;
  try {
    s.blk!.flush();
  } catch (err) {
    return -errnoOf(err);
  }
  if (syncs) s.pollAio();
  return 0;
}

const PREALLOC_MODES: readonly Prealloc[] = ['off', 'metadata', 'falloc', 'full'];

function truncateCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('truncate')!;
  let prealloc: Prealloc = 'off';
  const g = cmdGetopt(s, argv, 'm:');
  for (let o = g.next(); o; o = g.next()) {
    if (o.opt === 'm') {
      if (!(PREALLOC_MODES as readonly string[]).includes(o.arg!)) {
        s.errorReport(`Invalid preallocation mode '${o.arg}'`);
        return -Errno.EINVAL;
      }
      prealloc = o.arg as Prealloc;
    } else {
      return usage(s, ct);
    }
  }
  const rest = g.operands();
  if (rest.length === 0) return usage(s, ct);
  const parsed = cvtnum(rest[0]!);
  if (!parsed.ok) {
    // QEMU parses argv[optind] but names argv[1] in the message.
    s.out(`${cvtnumErrorText(parsed.errno, argv[1]!)}\n`);
    return -parsed.errno;
  }
  if (parsed.warning) s.warnReport(parsed.warning);
  const r = { value: Number(parsed.value) };
  try {
    s.blk!.truncate(r.value, { exact: false, prealloc });
    s.pollAio();
    return 0;
  } catch (err) {
    if (err instanceof ErrnoError || err instanceof BlockOpenError) {
      s.errorReport(err.message);
      return -(err.errno || Errno.EINVAL);
    }
    throw err;
  }
}

function lengthCmd(s: IoSession): number {
  s.out(`${humanSize(s.blk!.length())}\n`);
  return 0;
}

function infoCmd(s: IoSession): number {
  const root = s.blk!.root;
  s.out(`format name: ${root.driver}\n`);
  if (root.protocolName !== undefined) s.out(`format name: ${root.protocolName}\n`);
  let info;
  try {
    info = root.getInfo();
  } catch (err) {
    return -errnoOf(err);
  }
  s.out(`cluster size: ${humanSize(info.clusterSize)}\n`);
  s.out(`vm state offset: ${humanSize(info.vmStateOffset)}\n`);
  const specific = formatSpecific(root);
  if (specific) s.out(`Format specific information:\n${dumpQObject(1, specific.data)}`);
  return 0;
}

function discardCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('discard')!;
  let machine = false;
  let quiet = false;
  const g = cmdGetopt(s, argv, 'Cq');
  for (let o = g.next(); o; o = g.next()) {
    if (o.opt === 'C') machine = true;
    else if (o.opt === 'q') quiet = true;
    else return usage(s, ct);
  }
  const rest = g.operands();
  if (rest.length !== 2) return usage(s, ct);
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  const cnt = s.number(rest[1]!);
  if (!cnt.ok) return cnt.ret;
  if (cnt.value > BDRV_REQUEST_MAX_BYTES) {
    s.out(`length cannot exceed ${BDRV_REQUEST_MAX_BYTES}, given ${rest[1]}\n`);
    return -Errno.EINVAL;
  }
  const t1 = now();
  let errno = 0;
  try {
    s.blk!.discard(off.value, cnt.value);
  } catch (err) {
    errno = errnoOf(err);
  }
  if (!errno) s.pollAio();
  const t2 = now();
  if (errno) {
    s.out(failedText('discard', errno));
    return -errno;
  }
  if (!quiet) s.out(report('discard', elapsed(t1, t2), off.value, cnt.value, cnt.value, 1, machine));
  return 0;
}

function allocCmd(s: IoSession, argv: string[]): number {
  const start = s.number(argv[1]!);
  if (!start.ok) return start.ret;
  let count = 512;
  if (argv.length === 3) {
    const c = s.number(argv[2]!);
    if (!c.ok) return c.ret;
    count = c.value;
  }
  const root = s.blk!.root;
  let offset = start.value;
  let remaining = count;
  let sumAlloc = 0;
  while (remaining) {
    let r;
    try {
      r = isAllocated(root, offset, remaining);
    } catch (err) {
      const errno = errnoOf(err);
      s.out(`is_allocated failed: ${strerror(errno)}\n`);
      return -errno;
    }
    offset += r.pnum;
    remaining -= r.pnum;
    if (r.allocated) sumAlloc += r.pnum;
    if (r.pnum === 0) {
      count -= remaining;
      remaining = 0;
    }
  }
  s.out(`${sumAlloc}/${count} bytes allocated at offset ${humanSize(start.value)}\n`);
  return 0;
}

function mapCmd(s: IoSession): number {
  const root = s.blk!.root;
  let offset = 0;
  let bytes = root.length();
  while (bytes) {
    let first;
    let num;
    try {
      first = isAllocated(root, offset, bytes);
      num = first.pnum;
      while (num > 0 && num < bytes) {
        const next = isAllocated(root, offset + num, bytes - num);
        if (next.allocated !== first.allocated || next.pnum === 0) break;
        num += next.pnum;
      }
    } catch (err) {
      s.errorReport(`Failed to get allocation status: ${strerror(errnoOf(err))}`);
      return -Errno.EIO;
    }
    if (!num) {
      s.errorReport('Unexpected end of image');
      return -Errno.EIO;
    }
    const state = first.allocated ? '    allocated' : 'not allocated';
    s.out(`${humanSize(num)} (0x${num.toString(16)}) bytes ${state} at offset ${humanSize(offset)} (0x${offset.toString(16)})\n`);
    offset += num;
    bytes -= num;
  }
  return 0;
}

function reopenCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('reopen')!;
  const blk = s.blk!;
  let readOnly: boolean | undefined;
  let cache: ReturnType<typeof parseCacheMode>;
  let opts = new QDict();
  const g = cmdGetopt(s, argv, 'c:o:rw');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'c':
        cache = parseCacheMode(o.arg!);
        if (!cache) {
          s.errorReport(`Invalid cache option: ${o.arg}`);
          return -Errno.EINVAL;
        }
        break;
      case 'o':
        try {
          const parsed = parseOptsString(o.arg!, { onWarning: (w, h) => (s.warnReport(w), s.err(h)) });
          for (const [k, v] of parsed) opts.set(k, v);
        } catch (err) {
          if (err instanceof OptionsError) {
            s.errorReport(err.message);
            return -Errno.EINVAL;
          }
          throw err;
        }
        break;
      case 'r':
      case 'w':
        if (readOnly !== undefined) {
          s.errorReport('Only one -r/-w option may be given');
          return -Errno.EINVAL;
        }
        readOnly = o.opt === 'r';
        break;
      default:
        return usage(s, ct);
    }
  }
  if (g.operands().length !== 0) return usage(s, ct);
  if (opts.has('read-only')) {
    if (readOnly !== undefined) {
      s.errorReport("Cannot set both -r/-w and 'read-only'");
      return -Errno.EINVAL;
    }
  }
  if ((opts.has('cache.direct') || opts.has('cache.no-flush')) && cache) {
    s.errorReport('Cannot set both -c and the cache options');
    return -Errno.EINVAL;
  }
  for (const key of opts.keys()) {
    if (key !== 'read-only' && key !== 'cache.direct' && key !== 'cache.no-flush') {
      s.errorReport(`Cannot change the option '${key}'`);
      return -Errno.EINVAL;
    }
  }
  const roOpt = opts.get('read-only');
  if (roOpt !== undefined) readOnly = roOpt === 'on' || roOpt === true;
  opts = new QDict();
  if (readOnly !== undefined) blk.root.setReadOnly(readOnly);
  if (cache) {
    blk.writeCache = !cache.writethrough;
    blk.root.noFlush = cache.noFlush;
  }
  return 0;
}

function breakCmd(s: IoSession, argv: string[]): number {
  const dbg = s.debugNode();
  const errno = !dbg ? Errno.ENOTSUP : dbg.addBreakpoint(argv[1]!, argv[2]!) ? 0 : Errno.ENOENT;
  if (errno) {
    s.out(`Could not set breakpoint: ${strerror(errno)}\n`);
    return -errno;
  }
  return 0;
}

function removeBreakCmd(s: IoSession, argv: string[]): number {
  const dbg = s.debugNode();
  const errno = !dbg ? Errno.ENOTSUP : dbg.removeBreakpoint(argv[1]!) ? 0 : Errno.ENOENT;
  if (errno) {
    s.out(`Could not remove breakpoint ${argv[1]}: ${strerror(errno)}\n`);
    return -errno;
  }
  return 0;
}

function resumeCmd(s: IoSession, argv: string[]): number {
  const dbg = s.debugNode();
  const errno = !dbg ? Errno.ENOTSUP : dbg.resume(argv[1]!) ? 0 : Errno.ENOENT;
  if (errno) {
    s.out(`Could not resume request: ${strerror(errno)}\n`);
    return -errno;
  }
  return 0;
}

/**
 * wait_break polls the main loop until the tagged request is suspended. Requests run to
 * their breakpoint synchronously here, so it is either suspended already or never will be
 * (where QEMU would wait forever).
 */
function waitBreakCmd(s: IoSession): number {
  s.pollAio();
  return 0;
}

function sleepCmd(s: IoSession, argv: string[]): Promise<number> | number {
  const arg = argv[1]!;
  const ms = arg === '' ? 0 : strtolFull(arg);
  if (ms === null || ms < 0) {
    s.out(`${arg} is not a valid number\n`);
    return -Errno.EINVAL;
  }
  return new Promise((resolve) =>
    setTimeout(() => {
      s.pollAio();
      resolve(0);
    }, ms),
  );
}

function sigraiseCmd(s: IoSession, argv: string[]): number {
  const n = s.number(argv[1]!);
  if (!n.ok) return n.ret;
  if (n.value > 65) {
    s.out(`signal argument '${argv[1]}' is too large to be a valid signal\n`);
    return -Errno.EINVAL;
  }
  s.ctx.out.flushStdout();
  s.killedBySignal = n.value;
  return 0;
}

function abortCmd(s: IoSession): number {
  s.killedBySignal = 6;
  return 0;
}

function helpCmd(s: IoSession, argv: string[]): number {
  if (argv.length < 2) {
    for (const ct of sortedCommands()) s.out(helpOneline(ct.name, ct));
    s.out("\nUse 'help commandname' for extended help.\n");
    return 0;
  }
  const ct = findCommand(argv[1]!);
  if (!ct) {
    s.out(`command ${argv[1]} not found\n`);
    return -Errno.EINVAL;
  }
  s.out(helpOneline(argv[1]!, ct));
  const extra = EXTENDED_HELP[ct.name];
  if (extra) s.out(extra);
  return 0;
}

function helpOneline(name: string, ct: CmdInfo): string {
  return `${name} ${ct.args !== undefined ? `${ct.args} ` : ''}-- ${ct.oneline}\n`;
}

// ---- open / close / quit (qemu-io.c) ----

export function defaultOpenSettings(): OpenSettings {
  return {
    readOnly: false,
    cache: { direct: false, noFlush: false, writethrough: true },
    unmap: true,
    forceShare: false,
    snapshot: false,
    copyOnRead: false,
    nativeAio: false,
  };
}

function openCmd(s: IoSession, argv: string[]): number {
  const ct = table.get('open')!;
  const settings = defaultOpenSettings();
  const options = new QDict();
  let haveOptions = false;
  const g = cmdGetopt(s, argv, 'snCro:ki:t:d:U');
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 's':
        settings.snapshot = true;
        break;
      case 'n':
        settings.cache = { direct: true, noFlush: settings.cache.noFlush, writethrough: false };
        break;
      case 'C':
        settings.copyOnRead = true;
        break;
      case 'r':
        settings.readOnly = true;
        break;
      case 'k':
        settings.nativeAio = true;
        break;
      case 't': {
        const c = parseCacheMode(o.arg!);
        if (!c) {
          s.errorReport(`Invalid cache option: ${o.arg}`);
          return -Errno.EINVAL;
        }
        settings.cache = c;
        break;
      }
      case 'd': {
        const d = parseDiscardMode(o.arg!);
        if (d === undefined) {
          s.errorReport(`Invalid discard option: ${o.arg}`);
          return -Errno.EINVAL;
        }
        settings.unmap = d;
        break;
      }
      case 'i':
        if (!isValidAioMode(o.arg!)) {
          s.errorReport(`Invalid aio option: ${o.arg}`);
          return -Errno.EINVAL;
        }
        settings.nativeAio = o.arg === 'native';
        break;
      case 'o':
        if (s.imageOpts) {
          s.out("--image-opts and 'open -o' are mutually exclusive\n");
          return -Errno.EINVAL;
        }
        if (!parseInto(s, o.arg!, options)) return -Errno.EINVAL;
        haveOptions = true;
        break;
      case 'U':
        settings.forceShare = true;
        break;
      default:
        return usage(s, ct);
    }
  }
  let rest = g.operands();
  if (s.imageOpts && rest.length === 1) {
    if (!parseInto(s, rest[0]!, options)) return -Errno.EINVAL;
    haveOptions = true;
    rest = [];
  }
  let ret: number;
  if (rest.length === 1) ret = s.openFile(rest[0]!, settings, haveOptions ? options : undefined);
  else if (rest.length === 0) ret = s.openFile(undefined, settings, haveOptions ? options : undefined);
  else return usage(s, ct);
  return ret ? -Errno.EINVAL : 0;
}

/** qemu_opts_parse_noisily into the merged option list; false after printing the error. */
export function parseInto(s: IoSession, text: string, into: QDict, mergeLists = true): boolean {
  try {
    const parsed = parseOptsString(text, {
      mergeLists,
      onWarning: (warning, hint) => {
        s.warnReport(warning);
        s.err(hint);
      },
    });
    for (const [k, v] of parsed) {
      into.delete(k);
      into.set(k, v);
    }
    return true;
  } catch (err) {
    if (err instanceof OptionsError) {
      s.errorReport(err.message);
      return false;
    }
    throw err;
  }
}

function closeCmd(s: IoSession): number {
  s.closeFile();
  return 0;
}

function quitCmd(s: IoSession): number {
  s.quit = true;
  return 0;
}

// ---- the table ----

const commandList: CmdInfo[] = [
  { name: 'abort', run: abortCmd, argmin: 0, argmax: 0, nofileOk: true, oneline: 'simulate a program crash using abort(3)' },
  { name: 'aio_flush', run: (s) => (s.pollAio(), 0), argmin: 0, argmax: 0, oneline: 'completes all outstanding aio requests' },
  { name: 'aio_read', run: aioReadCmd, argmin: 2, argmax: -1, args: '[-Ciqv] [-P pattern] off len [len..]', oneline: 'asynchronously reads a number of bytes' },
  { name: 'aio_write', run: aioWriteCmd, argmin: 2, argmax: -1, needsWrite: true, args: '[-Cfiquz] [-P pattern] off len [len..]', oneline: 'asynchronously writes a number of bytes' },
  { name: 'alloc', altname: 'a', run: allocCmd, argmin: 1, argmax: 2, args: 'offset [count]', oneline: 'checks if offset is allocated in the file' },
  { name: 'break', run: breakCmd, argmin: 2, argmax: 2, args: 'event tag', oneline: 'sets a breakpoint on event and tags the stopped request as tag' },
  { name: 'close', altname: 'c', run: closeCmd, argmin: 0, argmax: 0, oneline: 'close the current open file' },
  { name: 'discard', altname: 'd', run: discardCmd, argmin: 2, argmax: -1, needsWrite: true, args: '[-Cq] off len', oneline: 'discards a number of bytes at a specified offset' },
  { name: 'flush', altname: 'f', run: flushCmd, argmin: 0, argmax: 0, oneline: 'flush all in-core file state to disk' },
  { name: 'help', altname: '?', run: helpCmd, argmin: 0, argmax: 1, global: true, args: '[command]', oneline: 'help for one or all commands' },
  { name: 'info', altname: 'i', run: infoCmd, argmin: 0, argmax: 0, oneline: 'prints information about the current file' },
  { name: 'length', altname: 'l', run: lengthCmd, argmin: 0, argmax: 0, oneline: 'gets the length of the current file' },
  { name: 'map', run: mapCmd, argmin: 0, argmax: 0, args: '', oneline: 'prints the allocated areas of a file' },
  { name: 'open', altname: 'o', run: openCmd, argmin: 1, argmax: -1, nofileOk: true, args: '[-rsCnkU] [-t cache] [-d discard] [-o options] [path]', oneline: 'open the file specified by path' },
  { name: 'quit', altname: 'q', run: quitCmd, argmin: -1, argmax: -1, global: true, oneline: 'exit the program' },
  { name: 'read', altname: 'r', run: readCmd, argmin: 2, argmax: -1, args: '[-abCqv] [-P pattern [-s off] [-l len]] off len', oneline: 'reads a number of bytes at a specified offset' },
  { name: 'readv', run: readvCmd, argmin: 2, argmax: -1, args: '[-Cqv] [-P pattern] off len [len..]', oneline: 'reads a number of bytes at a specified offset' },
  { name: 'remove_break', run: removeBreakCmd, argmin: 1, argmax: 1, args: 'tag', oneline: 'remove a breakpoint by tag' },
  { name: 'reopen', run: reopenCmd, argmin: 0, argmax: -1, args: '[(-r|-w)] [-c cache] [-o options]', oneline: 'reopens an image with new options' },
  { name: 'resume', run: resumeCmd, argmin: 1, argmax: 1, args: 'tag', oneline: 'resumes the request tagged as tag' },
  { name: 'sigraise', run: sigraiseCmd, argmin: 1, argmax: 1, nofileOk: true, args: 'signal', oneline: 'raises a signal' },
  { name: 'sleep', run: sleepCmd, argmin: 1, argmax: 1, nofileOk: true, oneline: 'waits for the given value in milliseconds' },
  { name: 'truncate', altname: 't', run: truncateCmd, argmin: 1, argmax: 3, needsWrite: true, args: '[-m prealloc_mode] off', oneline: 'truncates the current file at the given offset' },
  { name: 'wait_break', run: waitBreakCmd, argmin: 1, argmax: 1, args: 'tag', oneline: 'waits for the suspension of a request' },
  { name: 'write', altname: 'w', run: writeCmd, argmin: 2, argmax: -1, needsWrite: true, args: '[-bcCfnquz] [-P pattern | -s source_file] off len', oneline: 'writes a number of bytes at a specified offset' },
  { name: 'writev', run: writevCmd, argmin: 2, argmax: -1, needsWrite: true, args: '[-Cfq] [-P pattern] off len [len..]', oneline: 'writes a number of bytes at a specified offset' },
];

const table = new Map(commandList.map((c) => [c.name, c]));

function sortedCommands(): CmdInfo[] {
  return [...commandList].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function findCommand(name: string): CmdInfo | undefined {
  return sortedCommands().find((c) => c.name === name || c.altname === name);
}

/** breakline(): words separated by single spaces; empty words are dropped. */
function breakline(input: string): string[] {
  return input.split(' ').filter((w) => w.length > 0);
}

/** qemuio_command(): run one command line; returns 0 or a negative errno. */
export async function runCommand(s: IoSession, line: string): Promise<number> {
  const argv = breakline(line);
  if (argv.length === 0) return 0;
  const ct = findCommand(argv[0]!);
  if (!ct) {
    s.err(`command "${argv[0]}" not found\n`);
    return -Errno.EINVAL;
  }
  if (!ct.global && !ct.nofileOk && !s.blk) {
    s.err("no file open, try 'help open'\n");
    return -Errno.EINVAL;
  }
  const argc = argv.length - 1;
  if (argc < ct.argmin || (ct.argmax !== -1 && argc > ct.argmax)) {
    if (ct.argmax === -1) s.err(`bad argument count ${argc} to ${argv[0]}, expected at least ${ct.argmin} arguments\n`);
    else if (ct.argmin === ct.argmax) s.err(`bad argument count ${argc} to ${argv[0]}, expected ${ct.argmin} arguments\n`);
    else s.err(`bad argument count ${argc} to ${argv[0]}, expected between ${ct.argmin} and ${ct.argmax} arguments\n`);
    return -Errno.EINVAL;
  }
  if (ct.needsWrite && s.blk) {
    try {
      s.blk.requireWrite();
    } catch (err) {
      if (err instanceof BlockOpenError) {
        s.errorReport(err.message);
        return -err.errno;
      }
      throw err;
    }
  }
  return await ct.run(s, argv);
}
