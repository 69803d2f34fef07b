/**
 * bin/startup-cache.js: the launcher keeps type-stripped modules on disk. A cached start must
 * print exactly what an uncached one (QTEST_STARTUP_CACHE=0) prints, with nothing extra on
 * stderr: the drop-in tools' transcripts include it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const qtest = path.join(root, 'bin', 'qtest.js');
const dirs: string[] = [];

function run(cache: string, ...args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [qtest, ...args], {
    env: { ...process.env, QTEST_STARTUP_CACHE: cache },
    encoding: 'utf8',
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-startup-'));
  dirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('startup cache', () => {
  it('fills on the first start and gives the uncached output on every start', () => {
    const dir = tempDir();
    const uncached = run('0', 'qemu-img', 'info', '/nonexistent/qtest-startup.qcow2');
    const first = run(dir, 'qemu-img', 'info', '/nonexistent/qtest-startup.qcow2');
    const stripped = fs.readdirSync(path.join(dir, 'strip'));
    expect(stripped.length).toBeGreaterThan(10);
    expect(stripped.every((f) => /^[0-9a-f]{16}\.js$/.test(f))).toBe(true);
    const second = run(dir, 'qemu-img', 'info', '/nonexistent/qtest-startup.qcow2');
    for (const r of [first, second]) {
      expect(r.stdout).toBe(uncached.stdout);
      expect(r.stderr).toBe(uncached.stderr);
      expect(r.status).toBe(uncached.status);
    }
    expect(uncached.stderr).toMatch(/^qemu-img: Could not open/);
    // The second start found everything: no new entries.
    expect(fs.readdirSync(path.join(dir, 'strip')).sort()).toEqual([...stripped].sort());
  });

  it('an edit that keeps the size and the mtime still misses the cache', () => {
    const dir = tempDir();
    const mod = path.join(dir, 'm.ts');
    const loader = path.join(dir, 'load.mjs');
    fs.writeFileSync(
      loader,
      `import { installStartupCaches } from ${JSON.stringify(path.join(root, 'bin', 'startup-cache.js'))};\n` +
        `installStartupCaches();\nconst m = await import(${JSON.stringify(mod)});\nconsole.log(m.value);\n`,
    );
    const load = (): string => {
      const r = spawnSync(process.execPath, [loader], { env: { ...process.env, QTEST_STARTUP_CACHE: path.join(dir, 'cache') }, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      return r.stdout.trim();
    };
    fs.writeFileSync(mod, 'export const value: string = "one";\n');
    const stamp = fs.statSync(mod);
    expect(load()).toBe('one');
    expect(load()).toBe('one');
    fs.writeFileSync(mod, 'export const value: string = "two";\n');
    fs.utimesSync(mod, stamp.atime, stamp.mtime);
    expect(load()).toBe('two');
    expect(fs.readdirSync(path.join(dir, 'cache', 'strip')).length).toBe(2);
  });
});
