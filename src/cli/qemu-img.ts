/**
 * `qtest qemu-img ARGS...`: the built-in engine as a drop-in qemu-img (fds 1 and 2, glibc
 * stdout buffering, stdout flushed at exit).
 */
import { ProcessSink } from '../tools/output.ts';
import { qemuImgMain } from '../tools/qemu-img/main.ts';

export default async function qemuImg(argv: string[]): Promise<number> {
  const sink = new ProcessSink();
  try {
    return await qemuImgMain(argv, { out: sink, cwd: process.cwd(), env: process.env });
  } finally {
    sink.flushStdout();
  }
}
