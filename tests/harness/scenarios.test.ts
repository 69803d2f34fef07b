/**
 * Every ported scenario on real QEMU 7.2 (Debian's build, installed by .ci/run), once, with
 * -j 2: the expected transcripts must be exactly what QEMU prints. Skips without QEMU.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, qtest } from './cli.ts';
import { hasProgram } from '../../src/qcow2/testing/qemu.ts';

const haveQemu = hasProgram(process.env.QEMU_IMG ?? 'qemu-img') && hasProgram(process.env.QEMU_IO ?? 'qemu-io') && hasProgram(process.env.QSD_PROG ?? 'qemu-storage-daemon');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-suite-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!haveQemu)('all scenarios on real QEMU', () => {
  it('pass with -j 2 against their expected transcripts', { timeout: 240_000 }, () => {
    const ids = fs.readdirSync(path.join(ROOT, 'scenarios')).filter((n) => n.endsWith('.yaml')).map((n) => n.slice(0, -5));
    expect(ids.length).toBeGreaterThanOrEqual(21);
    // Timings of an earlier run, so -j 2 starts the long poles first (as .qtest/ would).
    const state = path.join(tmp, 'state');
    fs.mkdirSync(state, { recursive: true });
    fs.writeFileSync(path.join(state, 'timings.json'), JSON.stringify({ qemu: { '112': 50000, '271': 22000, '178': 20000, '080': 12000, '122': 6000, '154': 4000, '097': 3000 } }));
    const env = { QTEST_STATE: state, QTEST_SCRATCH: path.join(tmp, 'scratch') };
    const failedIn = (out: string): string[] => [...out.matchAll(/^(\S+) +(fail|error)/gm)].map((m) => m[1]!);
    const r = qtest(['run', '--backend', 'qemu', '-j', '2'], env);
    const failed = failedIn(r.stdout);
    // QEMU's LUKS setup (178) benchmarks PBKDF on the CPU and gives up when the machine is too
    // busy to measure it; only then are the failed scenarios run once more, on their own.
    if (failed.length && r.stdout.includes('Unable to get accurate CPU usage')) {
      const again = qtest(['run', '--backend', 'qemu', ...failed], env);
      expect(failedIn(again.stdout), again.stdout).toEqual([]);
      expect(again.status).toBe(0);
      return;
    }
    expect(failed, r.stdout).toEqual([]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${ids.length} passed, 0 failed`, 'm'));
  });
});
