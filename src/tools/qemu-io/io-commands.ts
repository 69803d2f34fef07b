/**
 * qemu-io's data commands (qemu-io-cmds.c): read, readv, write, writev, aio_read, aio_write and
 * discard. They share their flags (-C machine-readable statistics, -q quiet, -v hex dump,
 * -f FUA, -P pattern), the vectored argument form (offset len [len...]), the timing around the
 * request and the statistics line; each keeps its own checks in QEMU's order.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BDRV_REQUEST_MAX_BYTES } from '../../block/index.ts';
import type { BlockNode } from '../../block/types.ts';
import { filledBuffer, isFilledWith } from '../../block/zero.ts';
import type { ParsedOption } from '../common/getopt.ts';
import { dumpBuffer, elapsed, now, parsePattern, report } from './report.ts';
import { type IoSession, errnoOf, failedText } from './session.ts';
import { cmdGetopt, usage, type CmdInfo } from './command-support.ts';
import { alignedBytes } from '../../storage/aligned.ts';

const INT_MAX = 2 ** 31 - 1;

/** The flags the data commands share (each command's option string says which it takes). */
interface IoFlags {
  /** -C: statistics in the machine-readable form. */
  machine: boolean;
  /** -q: no statistics line. */
  quiet: boolean;
  /** -v: hex dump of the data read. */
  verbose: boolean;
  /** -f: force unit access. */
  fua: boolean;
  /** -P: the pattern byte, when given. */
  pattern: number | undefined;
  /** -b: the VM state area instead of the guest disk. */
  vmstate: boolean;
  /** -z: write zeroes. */
  zero: boolean;
  /** -u: zero writes may unmap. */
  unmap: boolean;
}

/** What a command's own option handler says: taken (undefined), stop with a code, or usage. */
type OwnOption = (o: ParsedOption) => number | 'usage' | undefined;

/**
 * getopt over a data command's words: the shared flags are handled here, the rest by `own`.
 * Returns the flags and operands, or the command's return code after an error.
 */
function ioOptions(s: IoSession, argv: string[], spec: string, ct: CmdInfo, own?: OwnOption): { flags: IoFlags; operands: string[] } | number {
  const flags: IoFlags = { machine: false, quiet: false, verbose: false, fua: false, pattern: undefined, vmstate: false, zero: false, unmap: false };
  const g = cmdGetopt(s, argv, spec);
  for (let o = g.next(); o; o = g.next()) {
    switch (o.opt) {
      case 'C':
        flags.machine = true;
        break;
      case 'q':
        flags.quiet = true;
        break;
      case 'v':
        flags.verbose = true;
        break;
      case 'f':
        flags.fua = true;
        break;
      case 'b':
        flags.vmstate = true;
        break;
      case 'z':
        flags.zero = true;
        break;
      case 'u':
        flags.unmap = true;
        break;
      case 'p':
        // -p is accepted and ignored, for backwards compatibility.
        break;
      case 'P': {
        const p = parsePattern(o.arg!);
        if (p === null) {
          s.out(`${o.arg} is not a valid pattern byte\n`);
          return -Errno.EINVAL;
        }
        flags.pattern = p;
        break;
      }
      default: {
        const r = own ? own(o) : 'usage';
        if (r === 'usage') return usage(s, ct);
        if (typeof r === 'number') return r;
      }
    }
  }
  return { flags, operands: g.operands() };
}

/** offset len [len...] of the vectored commands (create_iovec); a code after an error. */
function vectorArgs(s: IoSession, rest: string[], ct: CmdInfo): { offset: number; total: number } | number {
  if (rest.length < 2) return usage(s, ct);
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  let total = 0;
  for (const arg of rest.slice(1)) {
    const n = s.number(arg);
    if (!n.ok) return -Errno.EINVAL;
    if (n.value > BDRV_REQUEST_MAX_BYTES) {
      s.out(`Argument '${arg}' exceeds maximum size ${BDRV_REQUEST_MAX_BYTES}\n`);
      return -Errno.EINVAL;
    }
    if (total > BDRV_REQUEST_MAX_BYTES - n.value) {
      s.out(`The total number of bytes exceed the maximum size ${BDRV_REQUEST_MAX_BYTES}\n`);
      return -Errno.EINVAL;
    }
    total += n.value;
  }
  return { offset: off.value, total };
}

/**
 * A buffer to read into, filled with 0xab first as qemu_io_alloc does: drivers that return
 * without touching it (null-co without read-zeroes) show that pattern.
 */
function readBuffer(len: number): Uint8Array {
  return filledBuffer(len, 0xab);
}

/**
 * readBuffer() for synchronous reads, whose buffer is dead when the command returns: one
 * buffer is kept and refilled, so large reads do not pay for fresh pages every time.
 */
function scratchReadBuffer(len: number, prefill: boolean): Uint8Array {
  if (len > SCRATCH_MAX) return prefill ? readBuffer(len) : alignedBytes(len);
  if (!scratch || scratch.length < len) scratch = alignedBytes(Math.max(len, 1 << 20));
  const buf = scratch.subarray(0, len);
  if (prefill) buf.fill(0xab);
  return buf;
}

/**
 * Whether a read may leave part of its buffer untouched, so the 0xab fill shows: only null
 * drivers (read-zeroes=off) do; every other node fills the whole buffer or fails.
 */
function readMayLeaveGaps(node: BlockNode): boolean {
  if (node.driver.startsWith('null')) return true;
  for (const child of node.children.values()) if (readMayLeaveGaps(child)) return true;
  return false;
}

const SCRATCH_MAX = 64 << 20;
let scratch: Uint8Array | undefined;

/** offset count of the single-buffer commands; a code after an error. */
function rangeArgs(s: IoSession, rest: string[]): { offset: number; count: number } | number {
  const off = s.number(rest[0]!);
  if (!off.ok) return off.ret;
  const cnt = s.number(rest[1]!);
  if (!cnt.ok) return cnt.ret;
  return { offset: off.value, count: cnt.value };
}

interface Timed {
  errno: number;
  t1: bigint;
  t2: bigint;
}

/**
 * Run a request between two clock readings. A synchronous command waits in the main loop, so
 * pending aio completions are reported before its own result; an aio command returns at once.
 */
function timed(s: IoSession, op: () => void, sync: boolean): Timed {
  const t1 = now();
  let errno = 0;
  try {
    op();
  } catch (err) {
    errno = errnoOf(err);
  }
  if (sync && !errno) s.pollAio();
  return { errno, t1, t2: now() };
}

/** The end of a read: pattern check, dump and statistics; the command's return code. */
function readDone(s: IoSession, buf: Uint8Array, offset: number, flags: IoFlags, t: Timed, check = { from: 0, len: buf.length }): number {
  let ret = 0;
  if (flags.pattern !== undefined && !isFilledWith(buf, flags.pattern, check.from, check.from + check.len)) {
    s.out(`Pattern verification failed at offset ${offset + check.from}, ${check.len} bytes\n`);
    ret = -Errno.EINVAL;
  }
  if (flags.quiet) return ret;
  if (flags.verbose) s.out(dumpBuffer(buf, offset));
  s.out(report('read', elapsed(t.t1, t.t2), offset, buf.length, buf.length, 1, flags.machine));
  return ret;
}

/** A synchronous command's failure line or statistics line. */
function syncDone(s: IoSession, name: string, verb: string, t: Timed, offset: number, count: number, flags: IoFlags): number {
  if (t.errno) {
    s.out(failedText(name, t.errno));
    return -t.errno;
  }
  if (!flags.quiet) s.out(report(verb, elapsed(t.t1, t.t2), offset, count, count, 1, flags.machine));
  return 0;
}

function fail(s: IoSession, message: string): number {
  s.out(message);
  return -Errno.EINVAL;
}

function checkSectorAligned(s: IoSession, offset: number, count: number): number {
  if (offset % 512 !== 0) return fail(s, `${offset} is not a sector-aligned value for 'offset'\n`);
  if (count % 512 !== 0) return fail(s, `${count} is not a sector-aligned value for 'count'\n`);
  return 0;
}

/** VM state lives outside the guest disk; only formats with a vmstate area support it. */
interface VmStateNode {
  loadVmState?(offset: number, buf: Uint8Array): void;
  saveVmState?(offset: number, data: Uint8Array): void;
}

function vmState(s: IoSession): VmStateNode {
  return s.blk!.root as VmStateNode;
}

export function readCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  let sflag = false;
  let lflag = false;
  let patternOffset = 0;
  let patternCount = 0;
  const parsed = ioOptions(s, argv, 'bCl:pP:qs:v', ct, (o) => {
    switch (o.opt) {
      case 'l': {
        lflag = true;
        const n = s.number(o.arg!);
        if (!n.ok) return n.ret;
        patternCount = n.value;
        return undefined;
      }
      case 's': {
        sflag = true;
        const n = s.number(o.arg!);
        if (!n.ok) return n.ret;
        patternOffset = n.value;
        return undefined;
      }
      default:
        return 'usage';
    }
  });
  if (typeof parsed === 'number') return parsed;
  const { flags, operands: rest } = parsed;
  if (rest.length !== 2) return usage(s, ct);
  const range = rangeArgs(s, rest);
  if (typeof range === 'number') return range;
  const { offset, count } = range;
  if (count > BDRV_REQUEST_MAX_BYTES) return fail(s, `length cannot exceed ${BDRV_REQUEST_MAX_BYTES}, given ${rest[1]}\n`);
  if (flags.pattern === undefined && (lflag || sflag)) return usage(s, ct);
  if (!lflag) patternCount = count - patternOffset;
  if (patternCount < 0 || patternCount + patternOffset > count) return fail(s, 'pattern verification range exceeds end of read data\n');
  if (flags.vmstate) {
    const r = checkSectorAligned(s, offset, count);
    if (r) return r;
  }
  const buf = scratchReadBuffer(count, flags.vmstate || readMayLeaveGaps(s.blk!.root));
  const t = timed(
    s,
    () => {
      if (count > INT_MAX) throw new ErrnoError(Errno.ERANGE);
      if (!flags.vmstate) s.blk!.read(offset, buf);
      else if (vmState(s).loadVmState) vmState(s).loadVmState!(offset, buf);
      else throw new ErrnoError(Errno.ENOTSUP);
    },
    true,
  );
  if (t.errno) return syncDone(s, 'read', 'read', t, offset, count, flags);
  return readDone(s, buf, offset, flags, t, { from: patternOffset, len: patternCount });
}

export function readvCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  const parsed = ioOptions(s, argv, 'CP:qv', ct);
  if (typeof parsed === 'number') return parsed;
  const v = vectorArgs(s, parsed.operands, ct);
  if (typeof v === 'number') return v;
  const buf = scratchReadBuffer(v.total, readMayLeaveGaps(s.blk!.root));
  const t = timed(s, () => s.blk!.read(v.offset, buf), true);
  if (t.errno) return syncDone(s, 'readv', 'read', t, v.offset, v.total, parsed.flags);
  return readDone(s, buf, v.offset, parsed.flags, t);
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
  const buf = alignedBytes(len);
  for (let p = 0; p < len; p += data.length) buf.set(data.subarray(0, Math.min(data.length, len - p)), p);
  return buf;
}

export function writeCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  let cflag = false;
  let noFallback = false;
  let fileName: string | undefined;
  const parsed = ioOptions(s, argv, 'bcCfnpP:qs:uz', ct, (o) => {
    switch (o.opt) {
      case 'c':
        cflag = true;
        return undefined;
      case 'n':
        noFallback = true;
        return undefined;
      case 's':
        fileName = o.arg!;
        return undefined;
      default:
        return 'usage';
    }
  });
  if (typeof parsed === 'number') return parsed;
  const { flags, operands: rest } = parsed;
  const { vmstate: bflag, zero: zflag, unmap } = flags;
  if (rest.length !== 2) return usage(s, ct);
  if (bflag && zflag) return fail(s, '-b and -z cannot be specified at the same time\n');
  if (flags.fua && (bflag || cflag)) return fail(s, '-f and -b or -c cannot be specified at the same time\n');
  if (noFallback && !zflag) return fail(s, '-n requires -z to be specified\n');
  if (unmap && !zflag) return fail(s, '-u requires -z to be specified\n');
  if (Number(zflag) + Number(flags.pattern !== undefined) + Number(fileName !== undefined) > 1) {
    return fail(s, 'Only one of -z, -P, and -s can be specified at the same time\n');
  }
  const range = rangeArgs(s, rest);
  if (typeof range === 'number') return range;
  const { offset, count } = range;
  if (count > BDRV_REQUEST_MAX_BYTES && !noFallback) {
    return fail(s, `length cannot exceed ${BDRV_REQUEST_MAX_BYTES} without -n, given ${rest[1]}\n`);
  }
  if (bflag || cflag) {
    const r = checkSectorAligned(s, offset, count);
    if (r) return r;
  }
  let buf: Uint8Array | undefined;
  if (!zflag) {
    buf = fileName !== undefined ? (bufferFromFile(s, count, fileName) ?? undefined) : filledBuffer(count, flags.pattern ?? 0xcd);
    if (!buf) return -Errno.EINVAL;
  }
  const blk = s.blk!;
  const t = timed(
    s,
    () => {
      if (bflag) {
        if (count > INT_MAX) throw new ErrnoError(Errno.ERANGE);
        if (!vmState(s).saveVmState) throw new ErrnoError(Errno.ENOTSUP);
        vmState(s).saveVmState!(offset, buf!);
      } else if (zflag) {
        blk.writeZeroes(offset, count, { unmap, fua: flags.fua, noFallback });
      } else if (cflag) {
        if (count > BDRV_REQUEST_MAX_BYTES) throw new ErrnoError(Errno.ERANGE);
        blk.writeCompressed(offset, buf!);
      } else {
        if (count > INT_MAX) throw new ErrnoError(Errno.ERANGE);
        blk.write(offset, buf!, { fua: flags.fua });
      }
    },
    true,
  );
  return syncDone(s, 'write', 'wrote', t, offset, count, flags);
}

export function writevCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  const parsed = ioOptions(s, argv, 'CfqP:', ct);
  if (typeof parsed === 'number') return parsed;
  const v = vectorArgs(s, parsed.operands, ct);
  if (typeof v === 'number') return v;
  const buf = filledBuffer(v.total, parsed.flags.pattern ?? 0xcd);
  const t = timed(s, () => s.blk!.write(v.offset, buf, { fua: parsed.flags.fua }), true);
  return syncDone(s, 'writev', 'wrote', t, v.offset, v.total, parsed.flags);
}

export function discardCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  const parsed = ioOptions(s, argv, 'Cq', ct);
  if (typeof parsed === 'number') return parsed;
  const rest = parsed.operands;
  if (rest.length !== 2) return usage(s, ct);
  const range = rangeArgs(s, rest);
  if (typeof range === 'number') return range;
  if (range.count > BDRV_REQUEST_MAX_BYTES) return fail(s, `length cannot exceed ${BDRV_REQUEST_MAX_BYTES}, given ${rest[1]}\n`);
  const t = timed(s, () => s.blk!.discard(range.offset, range.count), true);
  return syncDone(s, 'discard', 'discard', t, range.offset, range.count, parsed.flags);
}

// ---- aio ----

/** `-i`: qemu-io injects an invalid request (block_acct_invalid) and reports only that. */
function injectInvalid(s: IoSession, kind: 'read' | 'write'): number {
  s.out(`injecting invalid ${kind} request\n`);
  return 0;
}

export function aioReadCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  const parsed = ioOptions(s, argv, 'CP:iqv', ct, (o) => (o.opt === 'i' ? injectInvalid(s, 'read') : 'usage'));
  if (typeof parsed === 'number') return parsed;
  const v = vectorArgs(s, parsed.operands, ct);
  if (typeof v === 'number') return v;
  const buf = readBuffer(v.total);
  s.beginAio(v.offset, 0);
  const t = timed(s, () => s.blk!.read(v.offset, buf), false);
  // The I/O is done now; its result is reported when QEMU's main loop next runs.
  s.deferAio(t.errno !== 0, () => {
    if (t.errno) s.out(failedText('readv', t.errno));
    else readDone(s, buf, v.offset, parsed.flags, t);
  }, v.offset, v.total);
  return 0;
}

export function aioWriteCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  const parsed = ioOptions(s, argv, 'CfiqP:uz', ct, (o) => (o.opt === 'i' ? injectInvalid(s, 'write') : 'usage'));
  if (typeof parsed === 'number') return parsed;
  const { flags, operands: rest } = parsed;
  const { zero: zflag, unmap } = flags;
  if (rest.length < 2) return usage(s, ct);
  if (zflag && rest.length !== 2) return fail(s, '-z supports only a single length parameter\n');
  if (unmap && !zflag) return fail(s, '-u requires -z to be specified\n');
  let t: Timed;
  let offset: number;
  let total: number;
  if (zflag) {
    const range = rangeArgs(s, rest);
    if (typeof range === 'number') return range;
    ({ offset, count: total } = range);
    s.beginAio(offset, 0);
    t = timed(s, () => s.blk!.writeZeroes(offset, total, { unmap, fua: flags.fua }), false);
    // QEMU never starts the clock for -z, so its "time" is the monotonic clock itself.
    t.t1 = 0n;
  } else {
    const v = vectorArgs(s, rest, ct);
    if (typeof v === 'number') return v;
    ({ offset, total } = v);
    const buf = filledBuffer(total, flags.pattern ?? 0xcd);
    s.beginAio(offset, total);
    t = timed(s, () => s.blk!.write(offset, buf, { fua: flags.fua }), false);
  }
  s.deferAio(t.errno !== 0, () => {
    if (t.errno) s.out(failedText('aio_write', t.errno));
    else if (!flags.quiet) s.out(report('wrote', elapsed(t.t1, t.t2), offset, total, total, 1, flags.machine));
  }, offset, total);
  return 0;
}
