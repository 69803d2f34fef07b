/**
 * `node tests/robustness/record-dropin.ts`: records what real QEMU's tools answer to every
 * hostile drop-in case into tests/robustness/dropin-hostile.json (needs qemu-img and qemu-io).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DROPIN_CASES } from './dropin-cases.ts';
import { freshDir, runReal, tempRoot } from './dropin-run.ts';

const root = tempRoot();
const records = [];
try {
  for (const [i, c] of DROPIN_CASES.entries()) {
    const dir = await freshDir(root, `c${i}`);
    records.push({ ...c, ...runReal(c, dir) });
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
const file = path.join(import.meta.dirname, 'dropin-hostile.json');
fs.writeFileSync(file, `${JSON.stringify(records, null, 1)}\n`);
process.stdout.write(`${records.length} cases recorded in ${file}\n`);
