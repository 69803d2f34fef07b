/**
 * The `builtin` backend: every step runs in this process. qemu-img and qemu-io are the same
 * ToolMain functions the drop-in CLIs call, with a RecordingSink that replays glibc's stdout
 * buffering (so `2>&1` transcripts interleave as with the real binaries); QMP sessions are
 * served by src/qmp over the same block layer. No child process is started.
 */
import { setSyncToDisk } from '../storage/file.ts';
import { RecordingSink } from '../tools/output.ts';
import type { ToolMain } from '../tools/context.ts';
import type { Backend, QmpConnection, QmpLaunch, ToolInvocation, ToolName, ToolRun } from './types.ts';

/** The QEMU release the built-in engine reproduces. */
export const BUILTIN_QEMU_VERSION = '7.2.22';

/** fgets() over a fixed stdin text: lines without their newline, null at the end. */
export function lineReader(text: string): () => string | null {
  let pos = 0;
  return () => {
    if (pos >= text.length) return null;
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(pos, end);
    pos = nl < 0 ? text.length : nl + 1;
    return line;
  };
}

async function loadTool(tool: ToolName, stdin: string | undefined): Promise<ToolMain> {
  // Loaded lazily: a run that never calls qemu-img does not pay for its modules.
  if (tool === 'qemu-io') {
    const { qemuIoMain, runQemuIo } = await import('../tools/qemu-io/main.ts');
    if (stdin === undefined) return qemuIoMain;
    return (argv, ctx) => runQemuIo(argv, ctx, lineReader(stdin));
  }
  return (await import('../tools/qemu-img/main.ts')).qemuImgMain;
}

export function createBuiltinBackend(): Backend {
  // TEST_DIRs are scratch space: no fdatasync (see setSyncToDisk).
  setSyncToDisk(false);
  return {
    name: 'builtin',

    features(): readonly string[] {
      return ['qmp', 'tool-stdin'];
    },

    async runTool(inv: ToolInvocation): Promise<ToolRun> {
      const main = await loadTool(inv.tool, inv.stdin);
      const sink = new RecordingSink();
      const exitCode = await main(inv.args, { out: sink, cwd: inv.cwd, env: inv.env, pathPolicy: inv.pathPolicy });
      // Process exit flushes stdout.
      sink.flushStdout();
      if (inv.streams === 'merged') return { exitCode, merged: sink.merged(), stdout: '', stderr: '' };
      return { exitCode, merged: '', stdout: sink.text('stdout'), stderr: sink.text('stderr') };
    },

    async launchQmp(launch: QmpLaunch): Promise<QmpConnection> {
      const { launchBuiltinQmp } = await import('../qmp/launch.ts');
      return launchBuiltinQmp(launch);
    },

    async qemuVersion(): Promise<string> {
      return BUILTIN_QEMU_VERSION;
    },
  };
}
