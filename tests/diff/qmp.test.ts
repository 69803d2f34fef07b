/**
 * QMP differential test: the same exchanges against the built-in server and against
 * qemu-storage-daemon 7.2 give identical replies and events after the iotests `qmp` filter
 * (CR stripped, timestamps replaced), and leave identical files behind.
 * Skipped when qemu-storage-daemon is not installed.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { QmpConnection } from '../../src/backends/types.ts';
import { launchBuiltinQmp } from '../../src/qmp/launch.ts';

const QSD = process.env.QSD_PROG ?? 'qemu-storage-daemon';
const haveQsd = spawnSync(QSD, ['--version']).status === 0;

/** One command and the pattern of the line that ends its output (as _send_qemu_cmd waits). */
interface Step {
  send: string;
  until: RegExp;
}

function qmpFilter(line: string): string {
  return line
    .replace(/\r/g, '')
    .replace(/"(seconds|microseconds)": -?\d+/g, '"$1":  TIMESTAMP')
    .replace(/^\{"QMP":.*$/, 'QMP_VERSION');
}

/** qemu-storage-daemon on stdio, with the same line interface as the built-in connection. */
function launchQsd(args: string[], cwd: string): QmpConnection {
  const child: ChildProcessWithoutNullStreams = spawn(QSD, ['--chardev', 'stdio,id=c', '--monitor', 'c', ...args], { cwd });
  let buf = '';
  const lines: string[] = [];
  let waiting: (() => void) | null = null;
  let ended = false;
  const onData = (d: Buffer) => {
    buf += d.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    waiting?.();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('close', () => {
    ended = true;
    waiting?.();
  });
  return {
    send(text) {
      child.stdin.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    async readLine(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (lines.length === 0 && !ended && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, deadline - Date.now());
          waiting = () => {
            clearTimeout(t);
            resolve();
          };
        });
        waiting = null;
      }
      return lines.shift() ?? null;
    },
    async kill() {
      child.kill('SIGKILL');
    },
  };
}

async function exchange(conn: QmpConnection, steps: Step[]): Promise<string[]> {
  const out: string[] = [];
  const first = await conn.readLine(5000);
  if (first !== null) out.push(qmpFilter(first));
  for (const step of steps) {
    out.push(`>>> ${step.send}`);
    conn.send(step.send);
    for (;;) {
      const line = await conn.readLine(5000);
      if (line === null) {
        out.push('<timeout>');
        break;
      }
      out.push(qmpFilter(line));
      if (step.until.test(line)) break;
    }
  }
  await conn.kill();
  return out;
}

function digest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    out[f] = crypto.createHash('md5').update(fs.readFileSync(path.join(dir, f))).digest('hex');
  }
  return out;
}

interface Case {
  name: string;
  setup: (dir: string) => void;
  args: (dir: string) => string[];
  steps: Step[];
}

const ret = /"return"|"error"/;
const concluded = /"status": "concluded"/;
const cap: Step = { send: '{"execute":"qmp_capabilities"}', until: ret };

const cases: Case[] = [
  {
    name: '244: blockdev-create qcow2 with data-file-raw, then job-dismiss',
    setup: (d) => {
      fs.writeFileSync(path.join(d, 't.qcow2'), '');
      fs.writeFileSync(path.join(d, 't.qcow2.data'), Buffer.alloc(1 << 20, 42));
    },
    args: (d) => ['--blockdev', `file,node-name=data,filename=${d}/t.qcow2.data`, '--blockdev', `file,node-name=meta,filename=${d}/t.qcow2`],
    steps: [
      cap,
      {
        send: '{ "execute": "blockdev-create",\n       "arguments": {\n           "job-id": "create",\n           "options": {\n               "driver": "qcow2",\n               "size": 1048576,\n               "file": "meta",\n               "data-file": "data",\n               "data-file-raw": true\n           } } }',
        until: concluded,
      },
      { send: '{"execute":"query-jobs"}', until: ret },
      { send: '{ "execute": "job-dismiss", "arguments": { "id": "create" } }', until: ret },
      { send: '{"execute":"query-jobs"}', until: ret },
    ],
  },
  {
    name: 'negotiation, parse errors, dispatch checks',
    setup: () => {},
    args: () => [],
    steps: [
      { send: '{"execute":"query-jobs"}', until: ret },
      cap,
      cap,
      { send: '{"execute":"foo"}', until: ret },
      { send: "{'execute':'query-jobs', 'id': 'x'}", until: ret },
      { send: '{"execute":"query-jobs",}', until: ret },
      { send: '{"execute" "query-jobs"}', until: ret },
      { send: '{1: 2}', until: ret },
      { send: '[1 2]', until: ret },
      { send: 'garbage', until: ret },
      { send: '"str"', until: ret },
      { send: '{"execute": 1}', until: ret },
      { send: '{"exec": "query-jobs"}', until: ret },
      { send: '{"execute":"query-jobs", "arguments": []}', until: ret },
      { send: '{"execute":"query-jobs", "arguments": {"x": 1, "y": 2}}', until: ret },
      { send: '{"execute":"job-dismiss", "arguments": {"id": 1}}', until: ret },
      { send: '{"execute":"job-dismiss"}', until: ret },
      { send: '{"execute":"job-finalize", "arguments": {"id": "nope"}}', until: ret },
    ],
  },
  {
    name: 'blockdev-add/del and blockdev-create errors and jobs',
    setup: (d) => {
      fs.writeFileSync(path.join(d, 'meta.img'), '');
    },
    args: () => [],
    steps: [
      cap,
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "file", "node-name": "f1", "filename": "nonexist"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "file", "node-name": "f1", "filename": "meta.img"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "file", "node-name": "f1", "filename": "meta.img"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "bogus", "node-name": "q2"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "file", "filename": "meta.img"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"node-name": "x", "filename": "meta.img"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "file", "node-name": "f2", "filename": "meta.img", "bogus": 1}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j", "options": {"driver": "qcow2", "file": "nonode", "size": 1048576}}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j2", "options": {"driver": "file", "filename": "new.img", "size": 65536}}}', until: concluded },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j2", "options": {"driver": "file", "filename": "new.img", "size": 65536}}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j3", "options": {"driver": "null-co", "size": 1}}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j4", "options": {"driver": "qcow2", "file": "f1"}}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j5", "options": {"driver": "qcow2", "file": 5, "size": 1}}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j6", "options": {"driver": "qcow2", "file": "f1", "size": 1048576, "version": "v2", "lazy-refcounts": true}}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j7", "options": {"driver": "qcow2", "file": "f1", "size": 4194304, "cluster-size": 4096, "refcount-bits": 8}}}', until: concluded },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j8", "options": {"driver": "file", "filename": "n2.img", "size": "1"}}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "j9", "options": {"driver": "file", "filename": "n2.img", "size": 1, "zzz": 1, "bogus": 2}}}', until: ret },
      { send: '{"execute":"query-jobs"}', until: ret },
      { send: '{"execute":"job-dismiss", "arguments": {"id": "j2"}}', until: ret },
      { send: '{"execute":"job-dismiss", "arguments": {"id": "j2"}}', until: ret },
      { send: '{"execute":"blockdev-del", "arguments": {"node-name": "f1"}}', until: ret },
      { send: '{"execute":"blockdev-del", "arguments": {"node-name": "f1"}}', until: ret },
      { send: '{"execute":"quit"}', until: ret },
    ],
  },
  {
    name: 'qcow2 nodes: blockdev-add over a named file node, inline refs, in-use deletion',
    setup: (d) => {
      spawnSync(process.env.QEMU_IMG ?? 'qemu-img', ['create', '-q', '-f', 'qcow2', path.join(d, 'q.qcow2'), '1M']);
    },
    args: () => [],
    steps: [
      cap,
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "file", "node-name": "f", "filename": "q.qcow2"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "qcow2", "node-name": "q", "file": "f"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "qcow2", "node-name": "q2", "file": "nonode"}}', until: ret },
      { send: '{"execute":"blockdev-add", "arguments": {"driver": "qcow2", "node-name": "q3", "file": {"driver": "file", "filename": "q.qcow2"}, "lazy-refcounts": "x"}}', until: ret },
      { send: '{"execute":"blockdev-del", "arguments": {"node-name": "f"}}', until: ret },
      { send: '{"execute":"blockdev-del", "arguments": {"node-name": "q"}}', until: ret },
      { send: '{"execute":"blockdev-del", "arguments": {"node-name": "f"}}', until: ret },
      { send: '{"execute":"blockdev-create", "arguments": {"job-id": "c", "options": {"driver": "qcow2", "file": {"driver": "file", "filename": "q.qcow2"}, "size": 2097152, "lazy-refcounts": true}}}', until: concluded },
      { send: '{"execute":"query-jobs"}', until: ret },
      { send: '{"execute":"job-dismiss", "arguments": {"id": "c"}}', until: ret },
    ],
  },
];

/** Both sides run in the same directory (paths end up in image headers), one after the other. */
async function runBoth(c: Case): Promise<{ real: string[]; ours: string[]; realFiles: Record<string, string>; ourFiles: Record<string, string> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-qmp-'));
  const reset = () => {
    for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
    c.setup(dir);
  };
  try {
    reset();
    const real = await exchange(launchQsd(c.args(dir), dir), c.steps);
    const realFiles = digest(dir);
    reset();
    const ours = await exchange(await launchBuiltinQmp({ args: c.args(dir), cwd: dir, env: {} }), c.steps);
    return { real, ours, realFiles, ourFiles: digest(dir) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!haveQsd)('QMP: built-in server vs qemu-storage-daemon 7.2', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const r = await runBoth(c);
      expect(r.ours).toEqual(r.real);
      expect(r.ourFiles).toEqual(r.realFiles);
    });
  }
});
