/**
 * qemu-io's command table and commands (qemu-io-cmds.c and the open/close/quit commands of
 * qemu-io.c in QEMU 7.2). A command returns 0 or a negative errno; any negative return makes
 * the process exit with status 1. Texts and streams are the real tool's.
 */
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BlockOpenError, OptionsError, isAllocated, parseCacheMode, parseOptsString, QDict } from '../../block/index.ts';
import type { Prealloc } from '../../block/types.ts';
import { humanSize } from '../common/human.ts';
import { cvtnum, cvtnumErrorText, strtolFull } from '../common/numbers.ts';
import { EXTENDED_HELP } from './help.ts';
import { dumpQObject } from './dump.ts';
import { formatSpecific } from '../qemu-img/engine.ts';
import { IoSession, defaultOpenSettings, errnoOf, takeOpenOption } from './session.ts';
import { cmdGetopt, usage, type CmdInfo } from './command-support.ts';
import { aioReadCmd, aioWriteCmd, discardCmd, readCmd, readvCmd, writeCmd, writevCmd } from './io-commands.ts';

export type { CmdInfo } from './command-support.ts';

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

function truncateCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
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

function reopenCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
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

function openCmd(s: IoSession, argv: string[], ct: CmdInfo): number {
  const settings = defaultOpenSettings();
  const options = new QDict();
  let haveOptions = false;
  const g = cmdGetopt(s, argv, 'snCro:ki:t:d:U');
  for (let o = g.next(); o; o = g.next()) {
    const shared = takeOpenOption(s, o, settings);
    if (shared === 'error') return -Errno.EINVAL;
    if (shared === 'taken') continue;
    if (o.opt !== 'o') return usage(s, ct);
    if (s.imageOpts) {
      s.out("--image-opts and 'open -o' are mutually exclusive\n");
      return -Errno.EINVAL;
    }
    if (!parseInto(s, o.arg!, options)) return -Errno.EINVAL;
    haveOptions = true;
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
  return await ct.run(s, argv, ct);
}
