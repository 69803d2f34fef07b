import * as fs from 'node:fs';

/**
 * Where a tool writes its text. Tools call stdout()/stderr() exactly where the real tool
 * prints, and flushStdout() where the real tool calls fflush(stdout); the sink decides how the
 * two streams reach their destination.
 */
export interface OutputSink {
  stdout(text: string): void;
  stderr(text: string): void;
  flushStdout(): void;
}

export type StreamName = 'stdout' | 'stderr';
export interface OutputEvent {
  stream: StreamName;
  text: string;
}

/**
 * glibc gives stdout on a pipe or regular file a buffer of st_blksize (4096 here) and leaves
 * stderr unbuffered; the order in which the two streams reach a shared `2>&1` descriptor
 * follows from that, so both sinks replay glibc's full-buffering rule.
 */
export const STDOUT_BUFFER_SIZE = 4096;

/** glibc's fully buffered stdout: emit() receives the pieces in the order write(2) would. */
class FullBuffer {
  private pending = '';
  private readonly emit: (text: string) => void;
  constructor(emit: (text: string) => void) {
    this.emit = emit;
  }

  write(text: string): void {
    const space = STDOUT_BUFFER_SIZE - this.pending.length;
    if (text.length <= space) {
      this.pending += text;
      return;
    }
    // Fill the buffer, write it out, pass whole blocks straight through, keep the tail.
    this.emit(this.pending + text.slice(0, space));
    const rest = text.slice(space);
    const direct = rest.length - (rest.length % STDOUT_BUFFER_SIZE);
    if (direct > 0) this.emit(rest.slice(0, direct));
    this.pending = rest.slice(direct);
  }

  flush(): void {
    if (this.pending.length > 0) this.emit(this.pending);
    this.pending = '';
  }
}

/**
 * Records what a tool wrote. merged() gives the bytes a reader of a shared `2>&1` descriptor
 * would see once the tool has exited.
 */
export class RecordingSink implements OutputSink {
  readonly events: OutputEvent[] = [];
  private mergedText = '';
  private readonly buffer = new FullBuffer((t) => {
    this.mergedText += t;
  });

  stdout(text: string): void {
    this.events.push({ stream: 'stdout', text });
    this.buffer.write(text);
  }

  stderr(text: string): void {
    this.events.push({ stream: 'stderr', text });
    this.mergedText += text;
  }

  flushStdout(): void {
    this.buffer.flush();
  }

  /** Both streams as one descriptor receives them; stdout's buffer is flushed as at exit. */
  merged(): string {
    this.buffer.flush();
    return this.mergedText;
  }

  text(stream: StreamName): string {
    let out = '';
    for (const e of this.events) if (e.stream === stream) out += e.text;
    return out;
  }
}

/**
 * The drop-in CLIs' sink: file descriptors 1 and 2, stdout buffered as glibc buffers it (full
 * buffering on pipes and files, line buffering on a terminal), so `2>&1` captures of
 * `qtest qemu-io` and of the real qemu-io interleave identically. Call flushStdout() at exit.
 */
export class ProcessSink implements OutputSink {
  private readonly buffer = new FullBuffer((t) => writeAll(1, t));
  private readonly lineBuffered = process.stdout.isTTY === true;

  stdout(text: string): void {
    this.buffer.write(text);
    if (this.lineBuffered && text.includes('\n')) this.buffer.flush();
  }

  stderr(text: string): void {
    writeAll(2, text);
  }

  flushStdout(): void {
    this.buffer.flush();
  }
}

function writeAll(fd: number, text: string): void {
  if (text.length === 0) return;
  const buf = Buffer.from(text, 'utf8');
  let done = 0;
  while (done < buf.length) {
    try {
      done += fs.writeSync(fd, buf, done, buf.length - done);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A full non-blocking pipe: retry until the reader drains it rather than lose output.
      if (code === 'EAGAIN') continue;
      if (code === 'EPIPE') return;
      throw err;
    }
  }
}
