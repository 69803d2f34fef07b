/**
 * The process a crash trial kills: `node writer.ts DIR SEED`. It creates the trial's image
 * with the engine (plus data file or backing file), opens it through the engine with real
 * files, and runs the plan's operations. Progress goes to stdout with synchronous writes, so
 * a line is in the pipe before the next operation starts:
 *   "S i"  operation i starts
 *   "A i"  the flush that is operation i-1 returned: operations [0, i) are durable
 *   "D"    all done, image closed
 * With a self-kill point, the writer sends itself SIGKILL just before its Nth write-like call
 * to a storage (write, write-zeroes, discard, truncate), i.e. in the middle of an engine
 * operation; otherwise the parent kills it at a random moment.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createQcow2, openQcow2 } from '../../src/qcow2/index.ts';
import type { GuestReader } from '../../src/qcow2/index.ts';
import { FileStorage, setSyncToDisk } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/types.ts';
import { delegateStorage } from '../../src/storage/delegate.ts';
import { backingByte, fillOp, planTrial } from './plan.ts';
import type { CrashMode } from './plan.ts';

const [dir, seedArg, modeArg] = process.argv.slice(2);
if (!dir || !seedArg) {
  process.stderr.write('usage: writer.ts DIR SEED [MODE]\n');
  process.exit(2);
}
// Kill -9 keeps everything the process wrote in the page cache: syncing adds nothing here.
setSyncToDisk(false);
const plan = planTrial(Number(seedArg), modeArg as CrashMode | undefined);

let calls = 0;
function maybeDie(): void {
  calls++;
  if (plan.selfKillAtCall !== null && calls >= plan.selfKillAtCall && !process.env.QTEST_CRASH_NO_KILL) process.kill(process.pid, 'SIGKILL');
}

/** A storage that counts its write-like calls (the self-kill points). */
function counted(inner: Storage): Storage {
  return delegateStorage(inner, {
    write: (o, d) => {
      maybeDie();
      inner.write(o, d);
    },
    writeZeroes: (o, l, u, n) => {
      maybeDie();
      inner.writeZeroes(o, l, u, n);
    },
    discard: (o, l) => {
      maybeDie();
      inner.discard(o, l);
    },
    truncate: (s, p) => {
      maybeDie();
      inner.truncate(s, p);
    },
  });
}

function say(line: string): void {
  fs.writeSync(1, `${line}\n`);
}

const imgPath = path.join(dir, 'img.qcow2');
const dataPath = path.join(dir, 'img.data');
const basePath = path.join(dir, 'base.raw');

// Set up (not killed: the counter starts with the first operation).
{
  const file = FileStorage.open(imgPath, { create: true, truncate: true });
  let data: FileStorage | undefined;
  if (plan.mode === 'data-file') data = FileStorage.open(dataPath, { create: true, truncate: true });
  if (plan.mode === 'backing') {
    const b = new Uint8Array(plan.size);
    for (let i = 0; i < b.length; i++) b[i] = backingByte(i);
    fs.writeFileSync(basePath, b);
  }
  createQcow2(
    file,
    {
      size: plan.size,
      clusterSize: plan.clusterSize,
      refcountBits: plan.refcountBits,
      extendedL2: plan.extendedL2,
      ...(plan.mode === 'data-file' ? { dataFile: 'img.data' } : {}),
      ...(plan.mode === 'backing' ? { backingFile: 'base.raw', backingFormat: 'raw' } : {}),
    },
    data,
  );
  file.close();
  data?.close();
}

const file = counted(FileStorage.open(imgPath));
const dataFile = plan.mode === 'data-file' ? counted(FileStorage.open(dataPath)) : null;
let backing: GuestReader | null = null;
if (plan.mode === 'backing') {
  const base = FileStorage.open(basePath, { readOnly: true });
  backing = { length: () => base.size(), read: (o, b) => base.read(o, b) };
}
const img = openQcow2({ file, dataFile, backing });
say('R');
for (let i = 0; i < plan.ops.length; i++) {
  const op = plan.ops[i]!;
  say(`S ${i}`);
  switch (op.kind) {
    case 'write':
      img.write(op.offset, fillOp(op.tag, op.offset, op.length));
      break;
    case 'compress':
      img.writeCompressed(op.offset, fillOp(op.tag, op.offset, op.length));
      break;
    case 'zero':
      img.writeZeroes(op.offset, op.length, { unmap: op.unmap });
      break;
    case 'discard':
      img.discard(op.offset, op.length);
      break;
    case 'flush':
      img.flush();
      say(`A ${i + 1}`);
      break;
    case 'snapshot':
      img.createSnapshot({ name: op.name, dateSec: 1_600_000_000 + i });
      break;
  }
}
const errors = img.close();
if (errors.length) process.stderr.write(`${errors.join('\n')}\n`);
say(`D ${calls}`);
