/**
 * qemu-io in-process, without QEMU: the facts of QEMU-7.2-FACTS.md §4 (statistics shape,
 * pattern failures, exit status, silent flush failure, open failures, stream order) and the
 * builtin backend's view of a run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordingSink } from '../output.ts';
import { runQemuIo } from './main.ts';
import { createBuiltinBackend } from '../../backends/builtin.ts';

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-qemu-io-'));
  fs.writeFileSync(path.join(dir, 'r.img'), Buffer.alloc(1 << 20));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function run(args: string[], stdin?: string[]) {
  const sink = new RecordingSink();
  const lines = stdin ? [...stdin] : undefined;
  const exit = await runQemuIo(args, { out: sink, cwd: dir, env: {} }, lines ? () => lines.shift() ?? null : undefined);
  sink.flushStdout();
  return { exit, stdout: sink.text('stdout'), stderr: sink.text('stderr'), merged: sink.merged() };
}

const STATS = /^(\d+(\.\d{3})? (bytes|KiB|MiB)), 1 ops; \d\d\.\d\d sec \([0-9.]+ (bytes|KiB|MiB|GiB|TiB)\/sec and \d+\.\d{4} ops\/sec\)$/;

describe('qemu-io results', () => {
  it('prints the report pair for reads and writes in the 7.2 shape', async () => {
    const r = await run(['-f', 'raw', '-c', 'write -P 0x11 0 64k', '-c', 'read -P 0x11 0 64k', 'r.img']);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('wrote 65536/65536 bytes at offset 0');
    expect(lines[1]).toMatch(STATS);
    expect(lines[1]!.startsWith('64 KiB, 1 ops; ')).toBe(true);
    expect(lines[2]).toBe('read 65536/65536 bytes at offset 0');
    expect(r.exit).toBe(0);
  });

  it('reports a pattern mismatch before the pair and exits 1', async () => {
    const r = await run(['-f', 'raw', '-c', 'read -P 1 0 512', 'r.img']);
    expect(r.stdout.split('\n').slice(0, 2)).toEqual(['Pattern verification failed at offset 0, 512 bytes', 'read 512/512 bytes at offset 0']);
    expect(r.exit).toBe(1);
  });

  it('fails beyond-EOF I/O with the strerror text and no statistics', async () => {
    const r = await run(['-f', 'raw', '-c', 'read 1M 512', 'r.img']);
    expect(r.stdout).toBe('read failed: Input/output error\n');
    expect(r.exit).toBe(1);
  });

  it('keeps running commands after an open failure, each saying no file is open', async () => {
    const r = await run(['-c', 'open -o driver=raw nonexist', '-c', 'read 0 1', '-c', 'length']);
    expect(r.stderr).toBe(
      "qemu-io: can't open device nonexist: Could not open 'nonexist': No such file or directory\n" +
        "no file open, try 'help open'\nno file open, try 'help open'\n",
    );
    expect(r.exit).toBe(1);
  });

  it('prints nothing when flush fails, only the exit status says so', async () => {
    const json = "json:{'driver':'blkdebug','inject-error':[{'event':'none','iotype':'flush'}],'image':{'driver':'file','filename':'r.img'}}";
    const r = await run(['-t', 'writeback', '-c', 'write 0 512', '-c', 'flush', json]);
    expect(r.stdout.split('\n')[0]).toBe('wrote 512/512 bytes at offset 0');
    expect(r.stderr).toBe('');
    expect(r.exit).toBe(1);
  });

  it('under 2>&1, stderr arrives before block-buffered stdout', async () => {
    const r = await run(['-f', 'raw', '-c', 'read 0 512', '-c', 'bogus', 'r.img']);
    expect(r.merged.startsWith('command "bogus" not found\nread 512/512 bytes at offset 0\n')).toBe(true);
  });

  it('reads commands from stdin without -c, printing prompts', async () => {
    const r = await run(['-f', 'raw', 'r.img'], ['length', 'quit', 'length']);
    expect(r.stdout).toBe('qemu-io> 1 MiB\nqemu-io> ');
    expect(r.exit).toBe(0);
  });

  it('exits 1 at once when the file argument cannot be opened', async () => {
    const r = await run(['-c', 'length', 'nonexist']);
    expect(r.stderr).toBe("qemu-io: can't open device nonexist: Could not open 'nonexist': No such file or directory\n");
    expect(r.stdout).toBe('');
    expect(r.exit).toBe(1);
  });
});

describe('builtin backend', () => {
  it('runs qemu-io in-process with merged and separate views', async () => {
    const backend = createBuiltinBackend();
    expect(await backend.qemuVersion()).toBe('7.2.22');
    const args = ['-f', 'raw', '-c', 'read 0 512', '-c', 'bogus', 'r.img'];
    const merged = await backend.runTool({ tool: 'qemu-io', args, cwd: dir, env: {}, streams: 'merged' });
    expect(merged.exitCode).toBe(1);
    expect(merged.merged.startsWith('command "bogus" not found\n')).toBe(true);
    const separate = await backend.runTool({ tool: 'qemu-io', args, cwd: dir, env: {}, streams: 'separate' });
    expect(separate.stderr).toBe('command "bogus" not found\n');
    expect(separate.stdout.startsWith('read 512/512 bytes at offset 0\n')).toBe(true);
  });

  it('feeds stdin lines to qemu-io', async () => {
    const backend = createBuiltinBackend();
    expect(backend.features?.()).toContain('tool-stdin');
    const r = await backend.runTool({ tool: 'qemu-io', args: ['-f', 'raw', 'r.img'], cwd: dir, env: {}, streams: 'merged', stdin: 'length\nbogus\n' });
    // The prompt is flushed before each line is read, so stderr lands after it (as with 7.2).
    expect(r.merged).toBe('qemu-io> 1 MiB\nqemu-io> command "bogus" not found\nqemu-io> ');
    expect(r.exitCode).toBe(1);
  });

  it('enforces the path policy of a scenario', async () => {
    const backend = createBuiltinBackend();
    const pathPolicy = {
      check(p: string) {
        if (!p.startsWith(dir)) throw new Error(`refusing to access '${p}': outside TEST_DIR`);
      },
    };
    const r = await backend.runTool({ tool: 'qemu-io', args: ['-f', 'raw', '-c', 'length', '/etc/hostname'], cwd: dir, env: {}, streams: 'merged', pathPolicy });
    expect(r.merged).toBe("qemu-io: can't open device /etc/hostname: Could not open '/etc/hostname': refusing to access '/etc/hostname': outside TEST_DIR\n");
    expect(r.exitCode).toBe(1);
  });
});
