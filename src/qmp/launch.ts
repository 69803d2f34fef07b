/**
 * launchBuiltinQmp: an in-process stand-in for `qemu-storage-daemon --chardev stdio,id=c
 * --monitor c --blockdev ...` (and the qemu-system options iotests pass). Output lines are
 * queued as the monitor would print them; since everything runs synchronously, a read on an
 * empty queue means the monitor has nothing more to say.
 */
import type { QmpConnection, QmpLaunch } from '../backends/types.ts';
import { parseOptsString } from '../block/options.ts';
import type { QDict } from '../block/qdict.ts';
import { parseJson } from './json.ts';
import { QmpBlockLayer, checkBlockdevKeyval, checkBlockdevOptions, registerBlockCommands, toQDict } from './block.ts';
import { isObject } from './qapi.ts';
import { QmpServer } from './server.ts';

/** Options that take an argument and are accepted without effect. */
const IGNORED_WITH_ARG = new Set(['machine', 'M', 'accel', 'display', 'serial', 'monitor', 'qmp', 'chardev', 'm', 'smp', 'cpu', 'vga', 'name', 'trace', 'D', 'd', 'pidfile', 'object']);
const IGNORED_FLAGS = new Set(['nodefaults', 'nographic', 'no-shutdown', 'S', 'daemonize']);

class LaunchError extends Error {}

/** A -blockdev argument as a QDict: JSON when it starts with '{', keyval otherwise. */
function blockdevOptions(spec: string): QDict {
  if (spec.trimStart().startsWith('{')) {
    const v = parseJson(spec);
    if (!isObject(v)) throw new LaunchError('Expecting a JSON object');
    checkBlockdevOptions(v);
    return toQDict(v);
  }
  const flat = parseOptsString(spec, { impliedName: 'driver', mergeLists: false });
  checkBlockdevKeyval(flat);
  return flat;
}

export async function launchBuiltinQmp(launch: QmpLaunch): Promise<QmpConnection> {
  const lines: string[] = [];
  let closed = false;
  const block = new QmpBlockLayer({ cwd: launch.cwd, pathPolicy: launch.pathPolicy, stderr: (t) => lines.push(...t.replace(/\n$/, '').split('\n')) });
  const server = new QmpServer((l) => {
    if (!closed) lines.push(l);
  });
  registerBlockCommands(server, block);

  const prog = 'qemu-storage-daemon';
  const args = launch.args;
  for (let i = 0; i < args.length; i++) {
    const raw = args[i]!;
    const name = raw.replace(/^--?/, '');
    if (!raw.startsWith('-')) {
      lines.push(`${prog}: Unexpected argument: ${raw}`);
      closed = true;
      break;
    }
    if (name === 'blockdev') {
      const spec = args[++i];
      if (spec === undefined) {
        lines.push(`${prog}: option '${raw}' requires an argument`);
        closed = true;
        break;
      }
      try {
        block.add(blockdevOptions(spec));
      } catch (err) {
        lines.push(`${prog}: ${raw} ${spec}: ${err instanceof Error ? err.message : String(err)}`);
        closed = true;
        break;
      }
      continue;
    }
    if (IGNORED_FLAGS.has(name)) continue;
    if (IGNORED_WITH_ARG.has(name)) {
      i++;
      continue;
    }
    lines.push(`${prog}: unrecognized option '${raw}'`);
    closed = true;
    break;
  }

  if (!closed) server.greeting();
  else block.closeAll();

  let waiters: Array<() => void> = [];
  return {
    send(text: string) {
      if (closed || server.quitRequested) return;
      server.input(text.endsWith('\n') ? text : `${text}\n`);
      if (server.quitRequested) {
        block.closeAll();
        closed = true;
      }
      for (const w of waiters) w();
      waiters = [];
    },
    async readLine(timeoutMs: number) {
      if (lines.length > 0) return lines.shift()!;
      if (closed || timeoutMs <= 0) return null;
      // Nothing is pending in-process; give a concurrent send() the chance to produce output.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(timeoutMs, 50));
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
      return lines.shift() ?? null;
    },
    async kill() {
      closed = true;
      lines.length = 0;
      block.closeAll();
    },
  };
}

