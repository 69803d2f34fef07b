/**
 * The per-run state every qemu-img subcommand shares: where text goes, how errors are
 * reported (error_report/error_exit/warn_report wording), and how a command ends early with
 * an exit status (QEMU calls exit(); we throw ImgExit and main catches it).
 */
import * as path from 'node:path';
import type { ToolContext } from '../context.ts';
import { QemuError } from '../../block/create-opts.ts';
import { SecretStore } from '../../block/secrets.ts';
import type { CreateEnv } from '../../block/create.ts';
import { Getopt, type GetoptResult, type LongOption } from '../common/getopt.ts';
import { HELP_BODY, VERSION_TEXT } from './help.ts';

export class ImgExit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.name = 'ImgExit';
    this.code = code;
  }
}

export class Img {
  readonly ctx: ToolContext;
  /** Quiet mode (-q): qprintf output is suppressed, errors are not. */
  quiet = false;
  /** Secrets defined with --object (QEMU's object tree lives as long as the process). */
  readonly secrets = new SecretStore();

  constructor(ctx: ToolContext) {
    this.ctx = ctx;
  }

  print(text: string): void {
    this.ctx.out.stdout(text);
  }

  /** qprintf: stdout unless -q. */
  qprint(text: string): void {
    if (!this.quiet) this.ctx.out.stdout(text);
  }

  flush(): void {
    this.ctx.out.flushStdout();
  }

  /** error_report: "qemu-img: MSG". */
  error(message: string): void {
    this.ctx.out.stderr(`qemu-img: ${message}\n`);
  }

  warn(message: string): void {
    this.ctx.out.stderr(`qemu-img: warning: ${message}\n`);
  }

  /** error_report_err / error_reportf_err: the message (with prefix) and then its hint verbatim. */
  reportErr(err: unknown, prefix = ''): void {
    this.error(prefix + errorMessage(err));
    const hint = err instanceof QemuError ? err.hint : (err as { hint?: unknown } | null)?.hint;
    if (typeof hint === 'string' && hint !== '') this.ctx.out.stderr(hint);
  }

  /** error_exit: the message, the --help pointer, exit status 1. */
  errorExit(message: string): never {
    this.error(message);
    this.ctx.out.stderr("Try 'qemu-img --help' for more information\n");
    throw new ImgExit(1);
  }

  /** help(): the full help text on stdout, exit status 0. */
  help(): never {
    this.print(VERSION_TEXT + HELP_BODY);
    throw new ImgExit(0);
  }

  version(): void {
    this.print(VERSION_TEXT);
  }

  /** Where image creation looks for files, policy, warnings and secrets. */
  createEnv(): CreateEnv {
    return { cwd: this.ctx.cwd, pathPolicy: this.ctx.pathPolicy, warn: (m) => this.warn(m), secrets: this.secrets };
  }

  /** A host path for a file name as the user gave it (relative to the tool's cwd). */
  hostPath(name: string): string {
    return path.resolve(this.ctx.cwd, name);
  }

  /** getopt_long over a subcommand's argv (argv[0] is the subcommand name). */
  getopt(argv: string[], optstring: string, longopts: readonly LongOption[] = []): Getopt {
    return new Getopt(argv, optstring, longopts, this.ctx.env.POSIXLY_CORRECT !== undefined, (m) => this.ctx.out.stderr(m));
  }

  /**
   * The next option of a subcommand, with the shared handling of every ':'-prefixed
   * qemu-img option string: missing argument, unknown option and -h/--help.
   */
  nextOption(g: Getopt): (GetoptResult & { kind: 'option' }) | null {
    const r = g.next();
    switch (r.kind) {
      case 'end':
        return null;
      case 'missing':
        this.errorExit(`missing argument for option '${g.previousArg()}'`);
      // falls through (errorExit never returns)
      case 'unknown':
        this.errorExit(`unrecognized option '${g.previousArg()}'`);
      // falls through
      case 'option':
        if (r.opt === 'h') this.help();
        return r;
    }
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
