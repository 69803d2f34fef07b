/**
 * The state of one qemu-io process and the helpers its commands share: the open image, the
 * output streams, QEMU's error_report/warn_report prefixes, and opening images (openfile()).
 */
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import type { ToolContext } from '../context.ts';
import { BlockGraph, BlockOpenError, OptionsError, openImage, type BlockBackend, type CacheSettings, type QDict } from '../../block/index.ts';
import { SizeOptionError } from '../../block/options.ts';
import { cvtnum, cvtnumErrorText } from '../common/numbers.ts';

export interface OpenSettings {
  readOnly: boolean;
  cache: CacheSettings;
  unmap: boolean;
  forceShare: boolean;
  snapshot: boolean;
  copyOnRead: boolean;
  nativeAio: boolean;
}

export class IoSession {
  readonly ctx: ToolContext;
  readonly progname: string;
  blk: BlockBackend | null = null;
  /** --image-opts: the file argument and open's path are option strings. */
  imageOpts = false;
  quit = false;
  /** Set by abort/sigraise: the process ends as if killed by this signal. */
  killedBySignal?: number;
  /**
   * Completions of aio requests not yet reported. QEMU reports them when its main loop next
   * runs (a later command that waits for I/O, aio_flush, sleep, close, exit): requests
   * refused by the block layer complete from bottom halves first, newest first; requests that
   * did I/O complete after them in submission order.
   */
  private readonly pendingAio: Array<{ early: boolean; report: () => void }> = [];
  /** Reads one line of stdin (without newline), null at EOF. */
  readLine: () => string | null;
  readonly graph = new BlockGraph();

  constructor(ctx: ToolContext, progname: string, readLine?: () => string | null) {
    this.ctx = ctx;
    this.progname = progname;
    this.readLine = readLine ?? (() => null);
  }

  out(text: string): void {
    this.ctx.out.stdout(text);
  }

  err(text: string): void {
    this.ctx.out.stderr(text);
  }

  /** error_report(): "<prog>: <msg>" on stderr. */
  errorReport(message: string): void {
    this.err(`${this.progname}: ${message}\n`);
  }

  warnReport(message: string): void {
    this.err(`${this.progname}: warning: ${message}\n`);
  }

  /** cvtnum() plus its printed error (stdout) and deprecation warning (stderr). */
  number(arg: string): { ok: true; value: number } | { ok: false; ret: number } {
    const r = cvtnum(arg);
    if (!r.ok) {
      this.out(`${cvtnumErrorText(r.errno, arg)}\n`);
      return { ok: false, ret: -r.errno };
    }
    if (r.warning) this.warnReport(r.warning);
    return { ok: true, value: Number(r.value) };
  }

  /**
   * openfile(): returns 0 or 1 (failure printed). `name` undefined opens from options only
   * (--image-opts), and the error then reads "can't open: ...".
   */
  openFile(name: string | undefined, settings: OpenSettings, options: QDict | undefined): number {
    if (this.blk) {
      this.errorReport("file open already, try 'help close'");
      return 1;
    }
    const prefix = name !== undefined ? `can't open device ${name}: ` : "can't open: ";
    try {
      this.blk = openImage(
        {
          filename: name,
          options,
          readOnly: settings.readOnly,
          cache: settings.cache,
          unmap: settings.unmap,
          forceShare: settings.forceShare,
          aio: settings.nativeAio ? 'native' : undefined,
          snapshot: settings.snapshot,
          copyOnRead: settings.copyOnRead,
        },
        {
          cwd: this.ctx.cwd,
          pathPolicy: this.ctx.pathPolicy,
          graph: this.graph,
          stderr: (t) => this.err(t),
          warn: (m) => this.warnReport(m),
          report: (m) => this.errorReport(m),
        },
      );
      return 0;
    } catch (err) {
      if (err instanceof BlockOpenError || err instanceof OptionsError) {
        this.errorReport(`${prefix}${err.message}`);
        if (err instanceof SizeOptionError && err.hint) this.err(err.hint);
        return 1;
      }
      throw err;
    }
  }

  closeFile(): void {
    this.pollAio();
    this.blk?.close();
    this.blk = null;
  }

  /** Queue the report of a completed aio request. */
  deferAio(early: boolean, report: () => void): void {
    this.pendingAio.push({ early, report });
  }

  /** The main loop ran: report every pending aio completion. */
  pollAio(): void {
    if (this.pendingAio.length === 0) return;
    const pending = this.pendingAio.splice(0);
    for (const p of pending.filter((x) => x.early).reverse()) p.report();
    for (const p of pending.filter((x) => !x.early)) p.report();
  }
}

/** The errno of a failed block request; anything else is an internal error. */
export function errnoOf(err: unknown): number {
  if (err instanceof ErrnoError) return err.errno;
  throw err;
}

/** "<op> failed: <strerror>" as the I/O commands print it. */
export function failedText(op: string, errno: number): string {
  return `${op} failed: ${strerror(errno)}\n`;
}

export { Errno };
