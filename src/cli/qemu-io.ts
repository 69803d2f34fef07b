/**
 * `qtest qemu-io ARGS...`: the built-in engine as a drop-in qemu-io. Output goes to fds 1 and 2
 * with glibc's stdout buffering; commands come from -c or, without any, from stdin.
 */
import * as fs from 'node:fs';
import { ProcessSink } from '../tools/output.ts';
import { runQemuIo } from '../tools/qemu-io/main.ts';

/** fgets() on fd 0: one line (newline stripped), null at end of input. */
function stdinLineReader(): () => string | null {
  let pending = Buffer.alloc(0);
  let eof = false;
  const chunk = Buffer.alloc(4096);
  return () => {
    for (;;) {
      const nl = pending.indexOf(0x0a);
      if (nl >= 0) {
        const line = pending.subarray(0, nl).toString('utf8');
        pending = pending.subarray(nl + 1);
        return line;
      }
      if (eof) {
        if (pending.length === 0) return null;
        const line = pending.toString('utf8');
        pending = Buffer.alloc(0);
        return line;
      }
      let n = 0;
      try {
        n = fs.readSync(0, chunk, 0, chunk.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') continue;
        n = 0;
      }
      if (n === 0) eof = true;
      else pending = Buffer.concat([pending, chunk.subarray(0, n)]);
    }
  };
}

export default async function qemuIo(argv: string[]): Promise<number> {
  const sink = new ProcessSink();
  try {
    return await runQemuIo(argv, { out: sink, cwd: process.cwd(), env: process.env }, stdinLineReader());
  } finally {
    sink.flushStdout();
  }
}
