/**
 * The state of one qemu-io process and the helpers its commands share: the open image, the
 * output streams, QEMU's error_report/warn_report prefixes, and opening images (openfile()).
 */
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import type { ToolContext } from '../context.ts';
import { BaseNode, BlkdebugNode, BlockGraph, SecretStore, isValidAioMode, parseCacheMode, parseDiscardMode, BlockOpenError, OptionsError, openImage, type BlockBackend, type CacheSettings, type QDict } from '../../block/index.ts';
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

/**
 * The open settings qemu-io's command line and its `open` command share (-s, -n, -C, -r, -k,
 * -t, -d, -i, -U). 'taken' when the option was one of them, 'error' after QEMU's message,
 * 'other' for the caller's own options.
 */
export function takeOpenOption(s: IoSession, o: { opt: string; arg?: string }, settings: OpenSettings): 'taken' | 'error' | 'other' {
  switch (o.opt) {
    case 's':
      settings.snapshot = true;
      return 'taken';
    case 'n':
      settings.cache = { direct: true, noFlush: settings.cache.noFlush, writethrough: false };
      return 'taken';
    case 'C':
      settings.copyOnRead = true;
      return 'taken';
    case 'r':
      settings.readOnly = true;
      return 'taken';
    case 'k':
      settings.nativeAio = true;
      return 'taken';
    case 'U':
      settings.forceShare = true;
      return 'taken';
    case 't': {
      const c = parseCacheMode(o.arg!);
      if (!c) {
        s.errorReport(`Invalid cache option: ${o.arg}`);
        return 'error';
      }
      settings.cache = c;
      return 'taken';
    }
    case 'd': {
      const d = parseDiscardMode(o.arg!);
      if (d === undefined) {
        s.errorReport(`Invalid discard option: ${o.arg}`);
        return 'error';
      }
      settings.unmap = d;
      return 'taken';
    }
    case 'i':
      if (!isValidAioMode(o.arg!)) {
        s.errorReport(`Invalid aio option: ${o.arg}`);
        return 'error';
      }
      settings.nativeAio = o.arg === 'native';
      return 'taken';
    default:
      return 'other';
  }
}

/** The settings qemu-io opens images with unless told otherwise (writethrough, discard on). */
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
   * did I/O complete after them in submission order. A request stopped at a blkdebug
   * breakpoint, and requests that wait for its cluster allocation, complete only after
   * `resume`.
   */
  private readonly pendingAio: PendingAio[] = [];
  /** Reads one line of stdin (without newline), null at EOF. */
  readLine: () => string | null;
  readonly graph = new BlockGraph();
  /** Secrets defined with --object. */
  readonly secrets = new SecretStore();

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
          stdout: (t) => this.out(t),
          warn: (m) => this.warnReport(m),
          report: (m) => this.errorReport(m),
        },
      );
      return 0;
    } catch (err) {
      if (err instanceof BlockOpenError || err instanceof OptionsError) {
        this.errorReport(`${prefix}${err.message}`);
        if ((err instanceof SizeOptionError || err instanceof BlockOpenError) && err.hint) this.err(err.hint);
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

  /** The blkdebug node breakpoints act on (bdrv_debug_* walk down the primary children). */
  debugNode(): BlkdebugNode | undefined {
    return this.blk ? findBlkdebug(this.blk.root) : undefined;
  }

  /**
   * Called before an aio request covering [offset, offset + bytes) runs: suspensions from
   * earlier requests are not its own, and whether it allocates clusters decides whether later
   * requests to the same clusters wait for it while it is suspended.
   */
  beginAio(offset: number, bytes: number): void {
    const dbg = this.debugNode();
    if (!dbg || !this.blk) return;
    dbg.holdMessages = true;
    dbg.takeNewSuspensions();
    this.nextAllocates = allocatesClusters(this.blk.root, offset, bytes);
  }

  private nextAllocates = false;

  /** Queue the report of a completed aio request covering [offset, offset + bytes). */
  deferAio(early: boolean, report: () => void, offset = 0, bytes = 0): void {
    const entry: PendingAio = { early, report, start: offset, end: offset + bytes, allocates: this.nextAllocates };
    this.nextAllocates = false;
    const dbg = this.debugNode();
    const tag = dbg?.takeNewSuspensions()[0];
    if (tag !== undefined) {
      entry.suspendedAs = tag;
    } else if (dbg && this.blk) {
      // handle_dependencies: a request touching a cluster that a suspended request is
      // allocating waits for it.
      const cs = Math.max(1, this.blk.root.clusterSize);
      const start = Math.floor(entry.start / cs) * cs;
      const end = Math.ceil(entry.end / cs) * cs;
      for (const p of this.pendingAio) {
        const held = p.suspendedAs ?? p.waitsFor;
        if (held === undefined || !p.allocates || !dbg.isSuspended(held)) continue;
        const pStart = Math.floor(p.start / cs) * cs;
        const pEnd = Math.ceil(p.end / cs) * cs;
        if (start < pEnd && pStart < end) {
          entry.waitsFor = held;
          entry.allocates = true;
          break;
        }
      }
    }
    this.pendingAio.push(entry);
  }

  /** The main loop ran: report every aio completion that is not held by a breakpoint. */
  pollAio(): void {
    const dbg = this.debugNode();
    dbg?.releaseMessages();
    if (this.pendingAio.length === 0) return;
    const held = (p: PendingAio): boolean => {
      const tag = p.suspendedAs ?? p.waitsFor;
      return tag !== undefined && dbg !== undefined && dbg.isSuspended(tag);
    };
    // A request released by `resume` completes after everything that was not held.
    const order = (p: PendingAio): number => (p.suspendedAs !== undefined ? 1 : p.waitsFor !== undefined ? 2 : 0);
    const ready = this.pendingAio.filter((p) => !held(p));
    if (ready.length === 0) return;
    const waiting = this.pendingAio.filter(held);
    this.pendingAio.splice(0, this.pendingAio.length, ...waiting);
    for (const p of ready.filter((x) => x.early).reverse()) p.report();
    const done = ready.filter((x) => !x.early);
    for (const rank of [0, 1, 2]) for (const p of done) if (order(p) === rank) p.report();
  }
}

interface PendingAio {
  early: boolean;
  report: () => void;
  start: number;
  end: number;
  /** Whether the request allocates clusters (others touching them wait for it). */
  allocates: boolean;
  /** The breakpoint tag this request stopped at. */
  suspendedAs?: string;
  /** The tag of a suspended request this one depends on. */
  waitsFor?: string;
}

/** Whether a write to [offset, offset + bytes) needs clusters the node has no host space for. */
function allocatesClusters(node: BaseNode, offset: number, bytes: number): boolean {
  const len = node.length();
  let pos = offset;
  const end = Math.min(offset + bytes, len);
  try {
    while (pos < end) {
      const st = node.blockStatus(pos, end - pos);
      if (st.offset === undefined) return true;
      pos += st.length;
    }
  } catch {
    return false;
  }
  return false;
}

function findBlkdebug(root: BaseNode): BlkdebugNode | undefined {
  let node: BaseNode | undefined = root;
  while (node) {
    if (node instanceof BlkdebugNode) return node;
    const next = node.primaryChild();
    node = next instanceof BaseNode ? next : undefined;
  }
  return undefined;
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
