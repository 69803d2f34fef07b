/**
 * qemu-io's command line (qemu-io.c main() in QEMU 7.2): options, the image argument, the -c
 * commands (or stdin lines when there are none), and the exit status (1 when any command
 * failed). Output goes through ctx.out exactly where the real tool prints.
 */
import type { ToolContext, ToolMain } from '../context.ts';
import { QDict } from '../../block/index.ts';
import { OptionLoop, type LongOption } from '../common/getopt.ts';
import { parseInto, runCommand } from './commands.ts';
import { IoSession, defaultOpenSettings, takeOpenOption } from './session.ts';
import { defineObject } from '../common/objects.ts';

export const QEMU_VERSION_LINE = '7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)';
const COPYRIGHT = 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers';

function usageText(name: string): string {
  return (
    `Usage: ${name} [OPTIONS]... [-c STRING]... [file]\n` +
    'QEMU Disk exerciser\n' +
    '\n' +
    "  --object OBJECTDEF   define an object such as 'secret' for\n" +
    '                       passwords and/or encryption keys\n' +
    '  --image-opts         treat file as option string\n' +
    '  -c, --cmd STRING     execute command with its arguments\n' +
    '                       from the given string\n' +
    '  -f, --format FMT     specifies the block driver to use\n' +
    '  -r, --read-only      export read-only\n' +
    '  -s, --snapshot       use snapshot file\n' +
    '  -n, --nocache        disable host cache, short for -t none\n' +
    '  -C, --copy-on-read   enable copy-on-read\n' +
    '  -m, --misalign       misalign allocations for O_DIRECT\n' +
    '  -k, --native-aio     use kernel AIO implementation\n' +
    '                       (Linux only, prefer use of -i)\n' +
    '  -i, --aio=MODE       use AIO mode (threads, native or io_uring)\n' +
    '  -t, --cache=MODE     use the given cache mode for the image\n' +
    '  -d, --discard=MODE   use the given discard mode for the image\n' +
    '  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]\n' +
    '                       specify tracing options\n' +
    '                       see qemu-img(1) man page for full description\n' +
    '  -U, --force-share    force shared permissions\n' +
    '  -h, --help           display this help and exit\n' +
    '  -V, --version        output version information and exit\n' +
    '\n' +
    `See '${name} -c help' for information on available commands.\n` +
    '\n' +
    'See <https://qemu.org/contribute/report-a-bug> for how to report bugs.\n' +
    'More information on the QEMU project at <https://qemu.org>.\n'
  );
}

const LONG_OPTIONS: LongOption[] = [
  { name: 'help', hasArg: false, val: 'h' },
  { name: 'version', hasArg: false, val: 'V' },
  { name: 'cmd', hasArg: true, val: 'c' },
  { name: 'format', hasArg: true, val: 'f' },
  { name: 'read-only', hasArg: false, val: 'r' },
  { name: 'snapshot', hasArg: false, val: 's' },
  { name: 'nocache', hasArg: false, val: 'n' },
  { name: 'copy-on-read', hasArg: false, val: 'C' },
  { name: 'misalign', hasArg: false, val: 'm' },
  { name: 'native-aio', hasArg: false, val: 'k' },
  { name: 'aio', hasArg: true, val: 'i' },
  { name: 'discard', hasArg: true, val: 'd' },
  { name: 'cache', hasArg: true, val: 't' },
  { name: 'trace', hasArg: true, val: 'T' },
  { name: 'object', hasArg: true, val: 'object' },
  { name: 'image-opts', hasArg: false, val: 'image-opts' },
  { name: 'force-share', hasArg: false, val: 'U' },
];

const PROGNAME = 'qemu-io';

/**
 * Run qemu-io. `readLine` supplies stdin lines for the interactive loop (no -c given); without
 * it stdin is empty.
 */
export async function runQemuIo(argv: string[], ctx: ToolContext, readLine?: () => string | null): Promise<number> {
  const s = new IoSession(ctx, PROGNAME, readLine);
  const settings = defaultOpenSettings();
  let format: string | undefined;
  const commands: string[] = [];

  const g = new OptionLoop([PROGNAME, ...argv], 'hVc:d:f:rsnCmki:t:T:U', LONG_OPTIONS, ctx.env.POSIXLY_CORRECT !== undefined, (m) => s.err(m));
  for (let o = g.next(); o; o = g.next()) {
    const shared = takeOpenOption(s, o, settings);
    if (shared === 'error') return 1;
    if (shared === 'taken') continue;
    switch (o.opt) {
      case 'f':
        format = o.arg!;
        break;
      case 'c':
        commands.push(o.arg!);
        break;
      case 'm':
        break;
      case 'T':
        // Tracing has no effect in the built-in engine.
        break;
      case 'V':
        s.out(`${PROGNAME} version ${QEMU_VERSION_LINE}\n${COPYRIGHT}\n`);
        return 0;
      case 'h':
        s.out(usageText(PROGNAME));
        return 0;
      case 'object':
        try {
          defineObject(s.secrets, o.arg!, ctx);
        } catch (err) {
          s.errorReport(err instanceof Error ? err.message : String(err));
          return 1;
        }
        break;
      case 'image-opts':
        s.imageOpts = true;
        break;
      default:
        s.out(usageText(PROGNAME));
        return 1;
    }
  }
  const operands = g.operands();
  if (operands.length > 1) {
    s.out(usageText(PROGNAME));
    return 1;
  }
  if (format !== undefined && s.imageOpts) {
    s.errorReport('--image-opts and -f are mutually exclusive');
    return 1;
  }

  try {
    if (operands.length === 1) {
      if (s.imageOpts) {
        const opts = new QDict();
        if (!parseInto(s, operands[0]!, opts, false)) return 1;
        if (s.openFile(undefined, settings, opts)) return 1;
      } else {
        const opts = format !== undefined ? QDict.from([['driver', format]]) : undefined;
        if (s.openFile(operands[0]!, settings, opts)) return 1;
      }
    }
    const ret = await commandLoop(s, commands);
    if (s.killedBySignal !== undefined) return 128 + s.killedBySignal;
    return ret < 0 ? 1 : 0;
  } finally {
    if (s.killedBySignal === undefined) s.closeFile();
  }
}

async function commandLoop(s: IoSession, commands: string[]): Promise<number> {
  let lastError = 0;
  if (commands.length > 0) {
    for (const c of commands) {
      if (s.quit || s.killedBySignal !== undefined) break;
      const ret = await runCommand(s, c);
      if (ret < 0) lastError = ret;
    }
    return lastError;
  }
  while (!s.quit && s.killedBySignal === undefined) {
    s.out(`${PROGNAME}> `);
    s.ctx.out.flushStdout();
    const line = s.readLine();
    if (line === null) break;
    const ret = await runCommand(s, line);
    if (ret < 0) lastError = ret;
  }
  return lastError;
}

export const qemuIoMain: ToolMain = (argv, ctx) => runQemuIo(argv, ctx);
