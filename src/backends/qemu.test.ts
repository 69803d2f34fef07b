import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendError, createQemuBackend, toStorageDaemonArgs } from './qemu.ts';
import { hasProgram } from '../qcow2/testing/qemu.ts';

const programs = { img: 'qemu-img', io: 'qemu-io', system: 'qemu-system-x86_64', storageDaemon: 'qemu-storage-daemon', qmpVia: 'storage-daemon' as const };
const haveTools = hasProgram('qemu-img') && hasProgram('qemu-io');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-qemu-backend-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('toStorageDaemonArgs', () => {
  it('spells qemu-system options the way qemu-storage-daemon wants them', () => {
    expect(toStorageDaemonArgs(['-blockdev', 'file,node-name=a,filename=x', '--object', 'secret,id=s'])).toEqual(['--blockdev', 'file,node-name=a,filename=x', '--object', 'secret,id=s']);
  });
  it('refuses options the daemon does not have', () => {
    expect(() => toStorageDaemonArgs(['-device', 'virtio-blk'])).toThrow(/qemu-storage-daemon has no option '-device'; set QTEST_QMP_VIA=system/);
  });
});

describe('missing binaries', () => {
  it('report a BackendError naming the program', async () => {
    const b = createQemuBackend({ ...programs, img: '/nonexistent/qemu-img' });
    await expect(b.runTool({ tool: 'qemu-img', args: ['--version'], cwd: tmp, env: {}, streams: 'merged' })).rejects.toThrow(BackendError);
    await expect(b.qemuVersion()).rejects.toThrow(/cannot run \/nonexistent\/qemu-img: not found/);
    const q = createQemuBackend({ ...programs, storageDaemon: '/nonexistent/qsd' });
    await expect(q.launchQmp({ args: [], cwd: tmp, env: {} })).rejects.toThrow(/cannot run \/nonexistent\/qsd: not found/);
  });
});

describe.skipIf(!haveTools)('real qemu-img / qemu-io', () => {
  const b = createQemuBackend(programs);
  const img = path.join(tmp, 't.qcow2');

  it('reports the QEMU version', async () => {
    expect(await b.qemuVersion()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('merged streams share one descriptor: unbuffered stderr lands before buffered stdout (2>&1)', async () => {
    await b.runTool({ tool: 'qemu-img', args: ['create', '-f', 'qcow2', img, '1M'], cwd: tmp, env: {}, streams: 'merged' });
    const run = await b.runTool({ tool: 'qemu-io', args: ['-f', 'qcow2', '-c', 'read 0 512', '-c', 'bogus', img], cwd: tmp, env: {}, streams: 'merged' });
    expect(run.exitCode).toBe(1);
    expect(run.merged).toMatch(/^command "bogus" not found\nread 512\/512 bytes at offset 0\n512 bytes, 1 ops; /);
  });

  it('separate streams come back apart', async () => {
    const run = await b.runTool({ tool: 'qemu-io', args: ['-f', 'qcow2', '-c', 'read 0 512', '-c', 'bogus', img], cwd: tmp, env: {}, streams: 'separate' });
    expect(run.stderr).toBe('command "bogus" not found\n');
    expect(run.stdout).toMatch(/^read 512\/512 bytes at offset 0\n/);
  });

  it.skipIf(!hasProgram('qemu-storage-daemon'))('QMP through qemu-storage-daemon: greeting, command, response, kill', async () => {
    const conn = await b.launchQmp({ args: ['-blockdev', `file,node-name=meta,filename=${img}`], cwd: tmp, env: {} });
    expect(await conn.readLine(10_000)).toMatch(/^\{"QMP": \{"version": .*"capabilities": \["oob"\]\}\}\r$/);
    conn.send('{ "execute": "qmp_capabilities" }');
    expect(await conn.readLine(10_000)).toBe('{"return": {}}\r');
    conn.send('{ "execute": "query-named-block-nodes", "arguments": { "flat": true } }');
    expect(await conn.readLine(10_000)).toContain('"node-name": "meta"');
    await conn.kill();
    expect(await conn.readLine(1000)).toBeNull();
  });
});
