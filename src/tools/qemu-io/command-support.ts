/**
 * What every qemu-io command shares: its table entry (cmdinfo_t), the one-line usage printed
 * for bad arguments, and getopt over the command's words.
 */
import { Errno } from '../../errno.ts';
import { OptionLoop } from '../common/getopt.ts';
import type { IoSession } from './session.ts';

export type CmdResult = number | Promise<number>;

export interface CmdInfo {
  name: string;
  altname?: string;
  /** The command; argv[0] is the name it was called by. Returns 0 or a negative errno. */
  run: (s: IoSession, argv: string[], ct: CmdInfo) => CmdResult;
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

/** qemuio_command_usage(): the one-line usage on stdout, and -EINVAL. */
export function usage(s: IoSession, ct: CmdInfo): number {
  s.out(`${ct.name} ${ct.args ?? '(null)'} -- ${ct.oneline}\n`);
  return -Errno.EINVAL;
}

/** getopt over a command's words; the command name is argv[0] in glibc's messages. */
export function cmdGetopt(s: IoSession, argv: string[], spec: string): OptionLoop {
  return new OptionLoop([...argv], spec, [], s.ctx.env.POSIXLY_CORRECT !== undefined, (m) => s.err(m));
}
