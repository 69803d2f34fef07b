/**
 * Errors of the block layer's front half (option parsing, opening). I/O failures use
 * ErrnoError from src/errno.ts; these carry QEMU's full message text (without program prefix)
 * and, when QEMU has one, the errno it would return.
 */
import { Errno } from '../errno.ts';

/** A block node could not be opened; `message` is what QEMU's Error would say. */
export class BlockOpenError extends Error {
  readonly errno: number;
  /** What error_report_err prints after the message (error_append_hint), newline included. */
  readonly hint: string | undefined;
  constructor(message: string, errno: number = Errno.EINVAL, hint?: string) {
    super(message);
    this.name = 'BlockOpenError';
    this.errno = errno;
    this.hint = hint;
  }
}

/** Malformed option text (`-o`, `--image-opts`, `json:`); message in QEMU's words. */
export class OptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptionsError';
  }
}
