/**
 * errno values and their glibc strerror() texts. QEMU prints strerror() verbatim in many
 * messages, and libuv's texts differ from glibc's, so the table is ours.
 */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EMFILE: 24,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  EDOM: 33,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  EILSEQ: 84,
  ENOTSUP: 95,
  ETIMEDOUT: 110,
  ENOMEDIUM: 123,
  EMEDIUMTYPE: 124,
  ECANCELED: 125,
} as const;

export type ErrnoName = keyof typeof Errno;

const messages: Record<number, string> = {
  1: 'Operation not permitted',
  2: 'No such file or directory',
  5: 'Input/output error',
  7: 'Argument list too long',
  9: 'Bad file descriptor',
  11: 'Resource temporarily unavailable',
  12: 'Cannot allocate memory',
  13: 'Permission denied',
  14: 'Bad address',
  16: 'Device or resource busy',
  17: 'File exists',
  18: 'Invalid cross-device link',
  20: 'Not a directory',
  21: 'Is a directory',
  22: 'Invalid argument',
  24: 'Too many open files',
  27: 'File too large',
  28: 'No space left on device',
  29: 'Illegal seek',
  30: 'Read-only file system',
  32: 'Broken pipe',
  33: 'Numerical argument out of domain',
  34: 'Numerical result out of range',
  36: 'File name too long',
  38: 'Function not implemented',
  39: 'Directory not empty',
  40: 'Too many levels of symbolic links',
  61: 'No data available',
  75: 'Value too large for defined data type',
  84: 'Invalid or incomplete multibyte or wide character',
  95: 'Operation not supported',
  110: 'Connection timed out',
  123: 'No medium found',
  124: 'Wrong medium type',
  125: 'Operation canceled',
};

/** glibc's strerror() text for a positive errno value. */
export function strerror(errno: number): string {
  return messages[Math.abs(errno)] ?? `Unknown error ${Math.abs(errno)}`;
}

/**
 * An error carrying an errno, the way QEMU's block layer reports failures (-errno plus,
 * often, an Error message). `message` is the QEMU wording, without program prefix.
 */
export class ErrnoError extends Error {
  readonly errno: number;
  constructor(errno: number, message?: string) {
    super(message ?? strerror(errno));
    this.name = 'ErrnoError';
    this.errno = Math.abs(errno);
  }
}

/** Map a Node.js system error (ENOENT, ...) to ErrnoError; anything else passes through. */
export function fromNodeError(err: unknown): unknown {
  if (err instanceof ErrnoError) return err;
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    const code = (err as { code: string }).code as ErrnoName;
    const num = Errno[code];
    if (num !== undefined) return new ErrnoError(num);
  }
  return err;
}
