import { Errno, ErrnoError, strerror } from '../errno.ts';

/**
 * A qcow2 failure: errno as QEMU returns it (-errno) and QEMU's message text (what
 * error_setg() would have produced, without any program or file-name prefix).
 */
export class Qcow2Error extends ErrnoError {
  /** QEMU's error_append_hint text, printed after the message, newline included. */
  readonly hint: string | undefined;
  constructor(errno: number, message: string, hint?: string) {
    super(errno, message);
    this.name = 'Qcow2Error';
    this.hint = hint;
  }
}

/** What qcow2_signal_corruption() reports (the BLOCK_IMAGE_CORRUPTED event's data). */
export interface CorruptionEvent {
  /** The text after "qcow2: Marking image as corrupt: " / "qcow2: Image is corrupt: ". */
  message: string;
  /** Fatal events mark the image corrupt (only for writable images). */
  fatal: boolean;
  offset?: number;
  size?: number;
}

/** Formats the line QEMU prints to stderr for a corruption event. */
export function corruptionLine(ev: CorruptionEvent): string {
  return ev.fatal
    ? `qcow2: Marking image as corrupt: ${ev.message}; further corruption events will be suppressed`
    : `qcow2: Image is corrupt: ${ev.message}; further non-fatal corruption events will be suppressed`;
}

/**
 * The request failed because the image metadata is corrupt. Like QEMU, the request itself
 * fails with EIO (message: strerror); the corruption text travels in `corruption`.
 */
export class Qcow2CorruptionError extends ErrnoError {
  readonly corruption: string;
  readonly fatal: boolean;
  constructor(corruption: string, fatal: boolean) {
    super(Errno.EIO);
    this.name = 'Qcow2CorruptionError';
    this.corruption = corruption;
    this.fatal = fatal;
  }
}

/** error_setg_errno(): "<message>: <strerror>". */
export function withErrno(message: string, errno: number): string {
  return `${message}: ${strerror(errno)}`;
}

/**
 * Strict mode (the fuzzer's): an untyped error (a TypeError from an engine bug, say) is
 * rethrown by errnoOf/asErrno instead of becoming EIO, so the bug shows as a crash with its
 * stack rather than as a plausible I/O error. Off by default: users get EIO and QEMU's text.
 */
let strictErrors = false;
export function setStrictErrors(enabled: boolean): void {
  strictErrors = enabled;
}

/** The errno of anything thrown by a Storage or by the engine (EIO for foreign errors). */
export function errnoOf(err: unknown): number {
  if (err instanceof ErrnoError) return err.errno;
  if (strictErrors) throw err;
  return Errno.EIO;
}

/** Rethrow as ErrnoError so nothing untyped escapes the engine. */
export function asErrno(err: unknown): ErrnoError {
  if (err instanceof ErrnoError) return err;
  if (strictErrors) throw err;
  return new ErrnoError(Errno.EIO, err instanceof Error ? err.message : String(err));
}

/** Thrown internally when a corrupt image was detected; see Qcow2Image.signalCorruption. */
export function qerr(errno: number, message: string): Qcow2Error {
  return new Qcow2Error(errno, message);
}
