/**
 * Runs one validated scenario in its TEST_DIR and produces the transcript, the way an iotest's
 * stdout+stderr end up in one file. The backend is only reached through the Backend interface.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend, QmpConnection, ToolName } from '../backends/types.ts';
import { FilterChain } from '../filters/apply.ts';
import type { FilterDef } from '../filters/types.ts';
import { formatDiagnostic } from '../scenario/location.ts';
import type { SourcePos } from '../scenario/location.ts';
import { TestDirPathPolicy, isPathLike, jsonStrings, pathCandidates, realEscape } from '../scenario/paths.ts';
import type { QmpStep, Scenario, Step, StreamMode } from '../scenario/types.ts';
import { expandVariables } from '../scenario/vars.ts';
import { breToRegExp } from './bre.ts';
import { parseTruncateSize } from './sizes.ts';

export interface RunSettings {
  imgfmt: string;
  imgproto: string;
  /** Options in front of every qemu-io invocation (iotests' QEMU_IO), before `-f $IMGFMT`. */
  qemuIoOptions: readonly string[];
  /** Basename of the QEMU system emulator, for the `qemu` filter's QEMU_PROG. */
  qemuProgName: string;
  imgopts?: string;
}

export interface RunContext {
  backend: Backend;
  filters: ReadonlyMap<string, FilterDef>;
  settings: RunSettings;
  /** Absolute, existing, empty directory for this run. */
  testDir: string;
}

export interface RunOutcome {
  transcript: string;
  /** Set when the scenario stopped early, as an iotest that hits `exit 1` (QMP timeout). */
  aborted?: string;
}

/** A scenario names a path outside its TEST_DIR (found before anything ran). */
export class PathEscapeError extends Error {
  readonly at: SourcePos;
  constructor(at: SourcePos, message: string) {
    super(formatDiagnostic({ ...at, message }));
    this.name = 'PathEscapeError';
    this.at = at;
  }
}

const QMP_COMMAND_ECHO_FILTERS = ['testdir', 'imgfmt'];
const QMP_RESPONSE_FILTERS = ['testdir', 'qemu', 'qemu_io', 'qmp', 'hmp'];
const DEFAULT_QMP_TIMEOUT_S = 10;

class Aborted extends Error {}

type PathCheck = 'path' | 'args' | 'json';

/** Every string of a step that may name a file, with how to look for paths in it. */
function pathStrings(step: Step): { text: string; check: PathCheck }[] {
  switch (step.kind) {
    case 'make_test_img':
      return [{ text: step.image, check: 'path' }, ...(step.opts !== undefined ? [{ text: step.opts, check: 'args' as const }] : [])];
    case 'check_test_img':
      return [{ text: step.image, check: 'path' }, ...step.args.map((text) => ({ text, check: 'args' as const }))];
    case 'qemu-img':
    case 'qemu-io':
      return step.args.map((text) => ({ text, check: 'args' }));
    case 'truncate':
    case 'touch':
    case 'file_size':
    case 'rm':
      return [{ text: step.file, check: 'path' }];
    case 'qmp':
      return [...step.launch.map((text) => ({ text, check: 'args' as const })), ...step.exchange.map((e) => ({ text: e.send, check: 'json' as const }))];
    default:
      return [];
  }
}

export function scenarioVariables(testDir: string, settings: RunSettings): Record<string, string> {
  return {
    TEST_DIR: testDir,
    TEST_IMG: `${testDir}/t.${settings.imgfmt}`,
    IMGFMT: settings.imgfmt,
    IMGPROTO: settings.imgproto,
  };
}

/** The run-time half of the TEST_DIR confinement: real paths, symlinks resolved. */
export function checkPaths(scenario: Scenario, testDir: string, vars: Record<string, string>): void {
  const real = fs.realpathSync(testDir);
  for (const step of scenario.steps) {
    for (const { text, check } of pathStrings(step)) {
      const expanded = expandVariables(text, vars);
      const candidates = check === 'path' ? [expanded] : check === 'json' ? jsonStrings(expanded).filter(isPathLike) : pathCandidates(expanded).filter(isPathLike);
      for (const c of candidates) {
        const reason = realEscape(c, testDir, real);
        if (reason) throw new PathEscapeError(step.at, `path '${c}' is refused: ${reason}; a scenario may only touch files in its TEST_DIR`);
      }
    }
  }
}

export async function runScenario(scenario: Scenario, ctx: RunContext): Promise<RunOutcome> {
  const { backend, settings, testDir } = ctx;
  const vars = scenarioVariables(testDir, settings);
  checkPaths(scenario, testDir, vars);

  const filters = new FilterChain(ctx.filters, {
    TEST_DIR: testDir,
    IMGFMT: settings.imgfmt,
    IMGPROTO: settings.imgproto,
    QEMU_PROG: settings.qemuProgName,
    IMGOPTS: settings.imgopts ?? '',
  });
  const pathPolicy = new TestDirPathPolicy(testDir);
  const x = (text: string): string => expandVariables(text, vars);
  const file = (text: string): string => path.resolve(testDir, x(text));

  let out = `QA output created by ${scenario.id}\n`;
  let lastStatus = 0;
  let qmpHandle = 0;

  async function tool(name: ToolName, args: string[], filterNames: readonly string[], stderr: StreamMode): Promise<void> {
    const separate = filterNames.length > 0 && stderr === 'direct';
    const run = await backend.runTool({ tool: name, args, cwd: testDir, env: {}, streams: separate ? 'separate' : 'merged', pathPolicy });
    lastStatus = run.exitCode;
    // `cmd | filter`: stderr reaches the transcript at once, the filtered stdout when the pipe drains.
    out += separate ? run.stderr + filters.apply(filterNames, run.stdout) : filters.apply(filterNames, run.merged);
  }

  async function qmp(step: QmpStep): Promise<void> {
    const handle = qmpHandle++;
    const conn: QmpConnection = await backend.launchQmp({ args: step.launch.map(x), cwd: testDir, env: {}, pathPolicy });
    try {
      // _launch_qemu waits for the greeting without printing it.
      if (!(await readUntil(conn, /capabilities/, DEFAULT_QMP_TIMEOUT_S, false))) {
        out += `Timeout waiting for capabilities on handle ${handle}\n`;
        throw new Aborted(`QMP greeting not received within ${DEFAULT_QMP_TIMEOUT_S} s`);
      }
      for (const ex of step.exchange) {
        const command = x(ex.send);
        if (command.startsWith('{')) out += filters.apply(QMP_COMMAND_ECHO_FILTERS, `${command}\n`);
        conn.send(command);
        if (ex.until === undefined) continue;
        const pattern = x(ex.until);
        if (!(await readUntil(conn, breToRegExp(pattern), ex.timeoutSeconds, true))) {
          out += `Timeout waiting for ${pattern} on handle ${handle}\n`;
          throw new Aborted(`no QMP response matching '${pattern}' within ${ex.timeoutSeconds} s (${formatDiagnostic({ ...ex.at, message: 'this exchange' })})`);
        }
      }
    } finally {
      await conn.kill();
    }
  }

  /** `_timed_wait_for`: echo each line (filtered) until one matches; false on timeout or EOF. */
  async function readUntil(conn: QmpConnection, pattern: RegExp, timeoutS: number, echo: boolean): Promise<boolean> {
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const line = await conn.readLine(Math.max(0, deadline - Date.now()));
      if (line === null) return false;
      // `read` without IFS= trims blanks around the line.
      const resp = line.replace(/^[ \t]+|[ \t]+$/g, '');
      if (echo) out += filters.apply(QMP_RESPONSE_FILTERS, `${resp}\n`);
      if (pattern.test(resp)) return true;
    }
  }

  try {
    for (const step of scenario.steps) {
      switch (step.kind) {
        case 'section':
          out += `\n=== ${x(step.title)} ===\n${step.blankAfter ? '\n' : ''}`;
          break;
        case 'subsection':
          out += `\n--- ${x(step.title)} ---\n`;
          break;
        case 'echo':
          out += x(step.text) + (step.newline ? '\n' : '');
          break;
        case 'make_test_img': {
          const args = ['create', '-f', settings.imgfmt, ...(step.opts !== undefined ? ['-o', x(step.opts)] : []), x(step.image), x(step.size)];
          await tool('qemu-img', args, ['img_create'], 'merged');
          break;
        }
        case 'check_test_img':
          await tool('qemu-img', ['check', ...step.args.map(x), '-f', settings.imgfmt, x(step.image)], ['testdir', 'qemu_img_check'], 'merged');
          break;
        case 'qemu-img':
          await tool('qemu-img', step.args.map(x), step.filters, step.stderr);
          break;
        case 'qemu-io':
          await tool('qemu-io', [...settings.qemuIoOptions, '-f', settings.imgfmt, ...step.args.map(x)], step.filters, step.stderr);
          break;
        case 'exit_status': {
          const message = step.cases.get(lastStatus) ?? step.default;
          if (message !== undefined) out += `${expandVariables(message, { ...vars, STATUS: String(lastStatus) })}\n`;
          break;
        }
        case 'truncate': {
          const target = file(step.file);
          const size = parseTruncateSize(x(step.size));
          const fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
          try {
            fs.ftruncateSync(fd, size);
          } finally {
            fs.closeSync(fd);
          }
          break;
        }
        case 'touch': {
          const target = file(step.file);
          fs.closeSync(fs.openSync(target, 'a'));
          const now = new Date();
          fs.utimesSync(target, now, now);
          break;
        }
        case 'file_size': {
          try {
            out += `${fs.statSync(file(step.file)).size}\n`;
          } catch {
            out += `du: cannot access '${x(step.file)}': No such file or directory\n`;
          }
          break;
        }
        case 'rm':
          fs.rmSync(file(step.file), { force: true });
          break;
        case 'qmp':
          await qmp(step);
          break;
      }
    }
  } catch (err) {
    if (err instanceof Aborted) return { transcript: out, aborted: err.message };
    throw err;
  }
  return { transcript: `${out}*** done\n` };
}
