/**
 * Runs one validated scenario in its TEST_DIR and produces the transcript, the way an iotest's
 * stdout+stderr end up in one file. The backend is only reached through the Backend interface.
 * Variables live in one flat namespace, as in a bash script without `local`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend, QmpConnection, ToolName } from '../backends/types.ts';
import { FilterChain } from '../filters/apply.ts';
import type { FilterRef } from '../filters/apply.ts';
import type { FilterDef } from '../filters/types.ts';
import { formatDiagnostic } from '../scenario/location.ts';
import type { SourcePos } from '../scenario/location.ts';
import { TestDirPathPolicy, jsonStrings, pathCandidates, realEscape } from '../scenario/paths.ts';
import { PrintfError, printf, printfBytes } from '../scenario/printf.ts';
import { Qcow2ToolError, runQcow2Tool } from '../scenario/steps/qcow2-header.ts';
import type { Condition, Macro, QmpStep, Scenario, Step, StdoutMode, StreamMode } from '../scenario/types.ts';
import { ExpansionError, arithmetic, expandText, expandVariables } from '../scenario/vars.ts';
import { fromNodeError, ErrnoError } from '../errno.ts';
import { breToRegExp } from './bre.ts';
import { escapingImageRefs } from './image-refs.ts';
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

/** A scenario names a path outside its TEST_DIR (found before the step ran). */
export class PathEscapeError extends Error {
  readonly at: SourcePos;
  constructor(at: SourcePos, message: string) {
    super(formatDiagnostic({ ...at, message }));
    this.name = 'PathEscapeError';
    this.at = at;
  }
}

/** A step could not run as written (unset variable, bad number, runaway loop, ...). */
export class ScenarioRunError extends Error {
  readonly at: SourcePos;
  constructor(at: SourcePos, message: string) {
    super(formatDiagnostic({ ...at, message }));
    this.name = 'ScenarioRunError';
    this.at = at;
  }
}

const QMP_COMMAND_ECHO_FILTERS = ['testdir', 'imgfmt'];
const QMP_RESPONSE_FILTERS = ['testdir', 'qemu', 'qemu_io', 'qmp', 'hmp'];
const DEFAULT_QMP_TIMEOUT_S = 10;
const MAX_CALL_DEPTH = 32;
/** Steps one run may execute, loops and macros included: beyond it the scenario is runaway. */
const MAX_STEPS = 5_000_000;
/** Offsets and sizes of file steps must be exact in a JS number (and any file system refuses more). */
const MAX_FILE_OFFSET = Number.MAX_SAFE_INTEGER;

class Aborted extends Error {}

type PathCheck = 'path' | 'args' | 'json';

/** Every string of a leaf step that may name a file, with how to look for paths in it. */
function pathStrings(step: Step): { text: string; check: PathCheck }[] {
  const args = (list: readonly string[]) => list.map((text) => ({ text, check: 'args' as const }));
  switch (step.kind) {
    case 'make_test_img':
      return [
        { text: step.image, check: 'path' },
        ...(step.backing !== undefined ? [{ text: step.backing, check: 'args' as const }] : []),
        ...args([...(step.opts !== undefined ? [step.opts] : []), ...(step.imgopts !== undefined ? [step.imgopts] : []), ...step.args]),
      ];
    case 'check_test_img':
    case 'img_info':
      return [{ text: step.image, check: 'path' }, ...args(step.args)];
    case 'qemu-img':
    case 'qemu-io':
      return args(step.args);
    case 'io_pattern':
    case 'qcow2':
      return [{ text: step.image, check: 'path' }];
    case 'truncate':
    case 'touch':
    case 'mkdir':
    case 'file_size':
    case 'rm':
    case 'poke_file':
    case 'poke_file_be':
    case 'poke_file_le':
    case 'peek_file_be':
    case 'peek_file_le':
    case 'peek_file_raw':
      return [{ text: step.file, check: 'path' }];
    case 'qmp':
      return [...args(step.launch), ...step.exchange.map((e) => ({ text: e.send, check: 'json' as const }))];
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
    IMGOPTS: settings.imgopts ?? '',
    CLUSTER_SIZE: '',
  };
}

type Lookup = (name: string) => string | undefined;

/**
 * Throws PathEscapeError for the first path of a leaf step that leaves TEST_DIR. `cleared`
 * remembers candidates already found inside it, for walks during which nothing on disk changes.
 */
function checkStepPaths(step: Step, testDir: string, realTestDir: string, lookup: Lookup, skipUnknown: boolean, cleared?: Set<string>): void {
  for (const { text, check } of pathStrings(step)) {
    let expanded: string;
    try {
      expanded = expandText(text, lookup);
    } catch (err) {
      if (skipUnknown && err instanceof ExpansionError) continue;
      throw err;
    }
    // Every candidate, not only path-like ones: a plain relative name can leave TEST_DIR through
    // a symbolic link inside it (realEscape resolves links; other names cost one realpath).
    const candidates = check === 'path' ? [expanded] : check === 'json' ? jsonStrings(expanded) : pathCandidates(expanded);
    for (const c of candidates) {
      if (cleared?.has(c)) continue;
      const reason = realEscape(c, testDir, realTestDir);
      if (reason) throw new PathEscapeError(step.at, `path '${c}' is refused: ${reason}; a scenario may only touch files in its TEST_DIR`);
      cleared?.add(c);
    }
  }
}

/**
 * The before-anything-runs half of the TEST_DIR confinement: walks every step with the variables
 * it can know without running tools (set values, loop values, macro arguments) and checks the
 * real paths, symlinks resolved. Paths built from tool output are checked when their step runs.
 */
export function checkPaths(scenario: Scenario, testDir: string, vars: Record<string, string>): void {
  const real = fs.realpathSync(testDir);
  // Nothing runs during the walk, so a name checked once needs no second realpath (loops and
  // macros repeat the same names many times).
  const cleared = new Set<string>();
  const env = new Map(Object.entries(vars));
  const lookup: Lookup = (name) => env.get(name);
  const tryExpand = (text: string): string | undefined => {
    try {
      return expandText(text, lookup);
    } catch {
      return undefined;
    }
  };
  const assign = (name: string, value: string | undefined): void => {
    if (value === undefined) env.delete(name);
    else env.set(name, value);
  };
  const walk = (steps: readonly Step[], depth: number): void => {
    for (const step of steps) {
      switch (step.kind) {
        case 'set':
          for (const a of step.assignments) assign(a.name, tryExpand(a.value));
          break;
        case 'if':
          walk(step.then, depth);
          walk(step.else, depth);
          break;
        case 'while':
          walk(step.steps, depth);
          break;
        case 'foreach': {
          const values = typeof step.values === 'string' ? tryExpand(step.values)?.split(/\s+/).filter((w) => w !== '') : step.values.map(tryExpand);
          if (!values || values.some((v) => v === undefined)) {
            assign(step.var, undefined);
            walk(step.steps, depth);
          } else {
            for (const v of values) {
              assign(step.var, v);
              walk(step.steps, depth);
            }
          }
          break;
        }
        case 'call': {
          const macro = scenario.macros.get(step.macro);
          if (!macro || depth >= MAX_CALL_DEPTH) break;
          const given = new Map(step.args.map((a) => [a.name, tryExpand(a.value)]));
          for (const p of macro.params) assign(p.name, given.has(p.name) ? given.get(p.name) : p.default !== undefined ? tryExpand(p.default) : undefined);
          walk(macro.steps, depth + 1);
          break;
        }
        default:
          if ('into' in step && step.into !== undefined) {
            checkStepPaths(step, testDir, real, lookup, true, cleared);
            assign(step.into, undefined);
          } else checkStepPaths(step, testDir, real, lookup, true, cleared);
      }
    }
  };
  walk(scenario.steps, 0);
}

/** Bytes of an integer, as poke_file_be/le print them. */
function intBytes(value: bigint, size: number, bigEndian: boolean): Buffer {
  const out = Buffer.alloc(size);
  let v = BigInt.asUintN(64, value);
  for (let i = 0; i < size; i++) {
    out[bigEndian ? size - 1 - i : i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export async function runScenario(scenario: Scenario, ctx: RunContext): Promise<RunOutcome> {
  const { backend, settings, testDir } = ctx;
  const vars = scenarioVariables(testDir, settings);
  checkPaths(scenario, testDir, vars);
  const realTestDir = fs.realpathSync(testDir);

  const filters = new FilterChain(ctx.filters, {
    TEST_DIR: testDir,
    IMGFMT: settings.imgfmt,
    IMGPROTO: settings.imgproto,
    QEMU_PROG: settings.qemuProgName,
    IMGOPTS: settings.imgopts ?? '',
  });
  const pathPolicy = new TestDirPathPolicy(testDir);
  const env = new Map<string, string>(Object.entries(vars));
  const lookup: Lookup = (name) => env.get(name);

  let out = `QA output created by ${scenario.id}\n`;
  let lastStatus = 0;
  let qmpHandle = 0;
  let current: Step | undefined;

  const fail = (message: string): never => {
    throw new ScenarioRunError(current?.at ?? { file: scenario.file, line: 1, col: 1 }, message);
  };
  const x = (text: string): string => expandText(text, lookup);
  const file = (text: string): string => path.resolve(testDir, x(text));
  const int = (text: string, what: string): bigint => {
    const v = arithmetic(x(text), lookup);
    if (v < 0n) fail(`${what} must not be negative, got ${v}`);
    return v;
  };
  /** A file offset: Node would silently write at the current position past 2^53. */
  const offsetOf = (text: string): number => {
    const v = int(text, 'offset');
    if (v > BigInt(MAX_FILE_OFFSET)) fail(`offset ${v} is too large (at most ${MAX_FILE_OFFSET})`);
    return Number(v);
  };
  /** fs errors of file steps, as the shell tool would word them (no stack, no Node codes). */
  const fsFail = (what: string, err: unknown): never => {
    const e = fromNodeError(err);
    return fail(`${what}: ${e instanceof ErrnoError ? e.message : err instanceof Error ? err.message : String(err)}`);
  };
  let stepsRun = 0;
  const small = (text: string, what: string, max: number): number => {
    const v = int(text, what);
    if (v > BigInt(max)) fail(`${what} ${v} is larger than ${max}`);
    return Number(v);
  };
  /** `$(...)` drops trailing newlines. */
  const captured = (text: string): string => text.replace(/\n+$/, '');

  interface ToolOptions {
    filters: readonly FilterRef[];
    stderr: StreamMode;
    stdout?: StdoutMode;
    stdin?: string;
    into?: string;
    retries?: number;
    /** Filters bound to other variables (make_test_img with its own fmt). */
    chain?: FilterChain;
  }

  /**
   * Names stored inside images (backing file, data file) are not in the scenario's text: look
   * at the images before a tool may follow such a name out of TEST_DIR.
   */
  function refuseEscapingImages(): void {
    const refs = escapingImageRefs(testDir, realTestDir);
    if (refs.length === 0) return;
    const r = refs[0]!;
    throw new PathEscapeError(
      current?.at ?? { file: scenario.file, line: 1, col: 1 },
      `image '${r.image}' names '${r.name}' as its ${r.kind}, and ${r.reason}; refusing to run a step that would open it (a scenario may only touch files in its TEST_DIR)`,
    );
  }

  /** The builtin backend's tools ask the path policy: a refusal there stops the scenario too. */
  function refuseRefusedPaths(before: number): void {
    const p = pathPolicy.refused[before];
    if (p === undefined) return;
    throw new PathEscapeError(current?.at ?? { file: scenario.file, line: 1, col: 1 }, `the step tried to open '${p}', which is outside TEST_DIR; a scenario may only touch files in its TEST_DIR`);
  }

  async function tool(name: ToolName, args: string[], o: ToolOptions): Promise<void> {
    refuseEscapingImages();
    const refusedBefore = pathPolicy.refused.length;
    const discard = o.stdout === 'discard';
    const capture = o.into !== undefined;
    // `cmd | filter`, `x=$(cmd)` and `cmd >/dev/null` need stdout apart from stderr.
    const separate = (o.filters.length > 0 && o.stderr === 'direct') || ((discard || capture) && o.stderr === 'direct');
    const invocation = { tool: name, args, cwd: testDir, env: {}, streams: separate ? ('separate' as const) : ('merged' as const), pathPolicy, ...(o.stdin !== undefined ? { stdin: o.stdin } : {}) };
    let run = await backend.runTool(invocation);
    for (let attempt = 0; run.exitCode !== 0 && attempt < (o.retries ?? 0); attempt++) run = await backend.runTool(invocation);
    refuseRefusedPaths(refusedBefore);
    lastStatus = run.exitCode;
    const chain = o.chain ?? filters;
    const stdout = chain.apply(o.filters, separate ? run.stdout : run.merged);
    // stderr reaches the transcript at once, the filtered stdout when the pipe drains.
    if (separate) out += run.stderr;
    if (capture) env.set(o.into!, captured(stdout));
    else if (!discard) out += stdout;
  }

  async function qmp(step: QmpStep): Promise<void> {
    refuseEscapingImages();
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

  function holds(c: Condition): boolean {
    if (c.kind === 'arith') return arithmetic(x(c.expr), lookup) !== 0n;
    const same = x(c.left) === x(c.right);
    return c.kind === 'equal' ? same : !same;
  }

  /** _make_test_img's command line (QEMU 7.2 common.rc). */
  function makeTestImgArgs(step: Extract<Step, { kind: 'make_test_img' }>): string[] {
    const fmt = step.fmt !== undefined ? x(step.fmt) : settings.imgfmt;
    const opts: string[] = [];
    const imgopts = step.imgopts !== undefined ? x(step.imgopts) : (env.get('IMGOPTS') ?? '');
    if (imgopts !== '') opts.push(imgopts);
    if (step.opts !== undefined) opts.push(x(step.opts));
    const clusterSize = step.clusterSize !== undefined ? x(step.clusterSize) : (env.get('CLUSTER_SIZE') ?? '');
    if ((fmt === 'qcow2' || fmt === 'qed') && clusterSize !== '') opts.push(`cluster_size=${clusterSize}`);
    return [
      'create',
      '-f',
      fmt,
      ...(opts.length > 0 ? ['-o', opts.join(',')] : []),
      ...(step.backing !== undefined ? ['-b', x(step.backing)] : []),
      x(step.image),
      ...(step.backingFmt !== undefined ? ['-F', x(step.backingFmt)] : []),
      ...step.args.map(x),
      ...(step.size !== undefined ? [x(step.size)] : []),
    ];
  }

  async function exec(steps: readonly Step[], depth: number): Promise<void> {
    for (const step of steps) {
      current = step;
      if (++stepsRun > MAX_STEPS) fail(`the scenario ran more than ${MAX_STEPS} steps; stopped as runaway`);
      checkStepPaths(step, testDir, realTestDir, lookup, false);
      switch (step.kind) {
        case 'section':
          out += `\n=== ${x(step.title)} ===\n${step.blankAfter ? '\n' : ''}`;
          break;
        case 'subsection':
          out += `\n--- ${x(step.title)} ---\n`;
          break;
        case 'echo': {
          const text = filters.apply(step.filters, x(step.text) + (step.newline ? '\n' : ''));
          if (step.into !== undefined) env.set(step.into, captured(text));
          else out += text;
          break;
        }
        case 'printf': {
          const text = printf(x(step.format), step.args.map(x));
          if (step.into !== undefined) env.set(step.into, text);
          else out += text;
          break;
        }
        case 'set':
          for (const a of step.assignments) env.set(a.name, x(a.value));
          break;
        case 'make_test_img': {
          // `local IMGFMT=raw` in a bash function also changes what _filter_img_create replaces.
          const chain = step.fmt !== undefined ? filters.with({ IMGFMT: x(step.fmt) }) : filters;
          await tool('qemu-img', makeTestImgArgs(step), { filters: ['img_create'], stderr: 'merged', chain });
          break;
        }
        case 'check_test_img':
          await tool('qemu-img', ['check', ...step.args.map(x), '-f', settings.imgfmt, x(step.image)], { filters: ['testdir', 'qemu_img_check', ...step.filters], stderr: 'merged' });
          break;
        case 'img_info':
          await tool('qemu-img', ['info', ...step.args.map(x), x(step.image)], {
            filters: [step.formatSpecific ? 'img_info_format_specific' : 'img_info', ...step.filters],
            stderr: 'merged',
          });
          break;
        case 'qemu-img':
        case 'qemu-io': {
          // A here-document expands variables, as `<<EOF` does.
          const options = { ...step, ...(step.stdin !== undefined ? { stdin: x(step.stdin) } : {}) };
          const prefix = step.kind === 'qemu-io' ? [...settings.qemuIoOptions, ...(step.noFmt ? [] : ['-f', settings.imgfmt])] : [];
          await tool(step.kind, [...prefix, ...step.args.map(x)], options);
          break;
        }
        case 'io_pattern': {
          const pattern = x(step.pattern);
          const start = int(step.start, 'start');
          const stepSize = int(step.step, 'step');
          const count = small(step.count, 'count', 1_000_000);
          const size = int(step.size, 'size');
          const op = x(step.op);
          let commands = '';
          for (let i = 0; i < count; i++) commands += `${op} -P ${pattern} ${start + BigInt(i) * stepSize} ${size}\n`;
          // do_io's banner goes to stderr, past the filter.
          out += `=== IO: pattern ${pattern}\n`;
          await tool('qemu-io', [...settings.qemuIoOptions, '-f', settings.imgfmt, x(step.image)], { filters: ['qemu_io'], stderr: 'direct', stdin: commands });
          break;
        }
        case 'exit_status': {
          const message = step.cases.get(lastStatus) ?? step.default;
          if (message !== undefined) out += `${expandVariables(message, { ...Object.fromEntries(env), STATUS: String(lastStatus) })}\n`;
          break;
        }
        case 'truncate': {
          const target = file(step.file);
          const sizeText = x(step.size);
          if (!/^\d+[KMGT]?$/.test(sizeText)) fail(`size '${sizeText}' must be a number of bytes with an optional K, M, G or T suffix`);
          const size = parseTruncateSize(sizeText);
          if (!(size <= MAX_FILE_OFFSET)) fail(`size '${sizeText}' is too large (at most ${MAX_FILE_OFFSET} bytes)`);
          try {
            const fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
            try {
              fs.ftruncateSync(fd, size);
            } finally {
              fs.closeSync(fd);
            }
          } catch (err) {
            fsFail(`truncate: cannot set the size of '${x(step.file)}' to ${size} bytes`, err);
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
        case 'mkdir':
          try {
            fs.mkdirSync(file(step.file));
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            out += `mkdir: cannot create directory '${x(step.file)}': ${code === 'EEXIST' ? 'File exists' : 'No such file or directory'}\n`;
          }
          break;
        case 'file_size': {
          let text: string;
          try {
            const st = fs.statSync(file(step.file));
            text = String(step.allocated ? st.blocks * 512 : st.size);
          } catch {
            out += `du: cannot access '${x(step.file)}': No such file or directory\n`;
            if (step.into !== undefined) env.set(step.into, '');
            break;
          }
          if (step.into !== undefined) env.set(step.into, text);
          else out += `${text}\n`;
          break;
        }
        case 'rm':
          fs.rmSync(file(step.file), { force: true });
          break;
        case 'poke_file':
        case 'poke_file_be':
        case 'poke_file_le': {
          const target = file(step.file);
          const offset = offsetOf(step.offset);
          const data = step.kind === 'poke_file' ? printfBytes(x(step.data), []) : intBytes(arithmetic(x(step.value), lookup), small(step.size, 'size', 8), step.kind === 'poke_file_be');
          try {
            const fd = fs.openSync(target, fs.existsSync(target) ? 'r+' : 'w');
            try {
              fs.writeSync(fd, data, 0, data.length, offset);
            } finally {
              fs.closeSync(fd);
            }
          } catch (err) {
            fsFail(`${step.kind}: cannot write ${data.length} bytes at offset ${offset} of '${x(step.file)}'`, err);
          }
          break;
        }
        case 'peek_file_be':
        case 'peek_file_le':
        case 'peek_file_raw': {
          const size = small(step.size, 'size', step.kind === 'peek_file_raw' ? 1 << 20 : 8);
          const offset = offsetOf(step.offset);
          const buf = Buffer.alloc(size);
          let got = 0;
          try {
            const fd = fs.openSync(file(step.file), 'r');
            try {
              got = fs.readSync(fd, buf, 0, size, offset);
            } finally {
              fs.closeSync(fd);
            }
          } catch (err) {
            if (err instanceof ScenarioRunError) throw err;
            out += `od: ${x(step.file)}: No such file or directory\n`;
          }
          const bytes = buf.subarray(0, got);
          let value: string;
          if (step.kind === 'peek_file_raw') value = bytes.toString('latin1');
          else {
            let v = 0n;
            if (step.kind === 'peek_file_be') for (const b of bytes) v = (v << 8n) | BigInt(b);
            else bytes.forEach((b, i) => (v |= BigInt(b) << BigInt(8 * i)));
            value = v.toString();
          }
          if (step.into !== undefined) env.set(step.into, value);
          else out += value;
          break;
        }
        case 'qcow2': {
          let result;
          try {
            result = runQcow2Tool(file(step.image), step.args.map(x));
          } catch (err) {
            if (!(err instanceof Qcow2ToolError)) throw err;
            result = { output: `qcow2.py: ${err.message}\n`, exitCode: 1 };
          }
          lastStatus = result.exitCode;
          out += filters.apply(step.filters, result.output);
          break;
        }
        case 'qmp':
          await qmp(step);
          break;
        case 'if':
          await exec(holds(step.condition) ? step.then : step.else, depth);
          break;
        case 'foreach': {
          const values = typeof step.values === 'string' ? x(step.values).split(/[ \t\n]+/).filter((w) => w !== '') : step.values.map(x);
          for (const v of values) {
            env.set(step.var, v);
            await exec(step.steps, depth);
          }
          break;
        }
        case 'while': {
          let rounds = 0;
          const loop = step;
          while (holds(loop.condition)) {
            if (++rounds > loop.max) {
              current = loop;
              fail(`while loop did not end after ${loop.max} rounds`);
            }
            await exec(loop.steps, depth);
            current = loop;
          }
          break;
        }
        case 'call': {
          const macro: Macro | undefined = scenario.macros.get(step.macro);
          if (!macro) fail(`unknown macro '${step.macro}'`);
          if (depth >= MAX_CALL_DEPTH) fail(`macros nested more than ${MAX_CALL_DEPTH} deep`);
          const given = new Map(step.args.map((a) => [a.name, x(a.value)]));
          for (const p of macro!.params) {
            const v = given.get(p.name) ?? (p.default !== undefined ? x(p.default) : undefined);
            if (v === undefined) fail(`call of macro '${macro!.name}' is missing param '${p.name}'`);
            env.set(p.name, v!);
          }
          await exec(macro!.steps, depth + 1);
          break;
        }
      }
    }
  }

  try {
    await exec(scenario.steps, 0);
  } catch (err) {
    if (err instanceof Aborted) return { transcript: out, aborted: err.message };
    if (err instanceof ExpansionError || err instanceof PrintfError) throw new ScenarioRunError(current?.at ?? { file: scenario.file, line: 1, col: 1 }, err.message);
    throw err;
  }
  return { transcript: `${out}*** done\n` };
}
