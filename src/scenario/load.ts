/**
 * Scenario YAML → validated Scenario. Every problem found is collected with its
 * `file:line:col`, and all of them are thrown together as one ValidationError.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ValidationError } from './location.ts';
import type { Diagnostic, SourcePos } from './location.ts';
import { parseYamlTree, describeNode, innerOffset } from './yaml-tree.ts';
import type { YMap, YNode, YScalar, YSeq } from './yaml-tree.ts';
import { STEP_SPECS, STEP_KINDS, EXCHANGE_FIELDS, SCENARIO_FIELDS, REQUIRES_FIELDS, SCENARIO_VARIABLES, STATUS_VARIABLE } from './spec.ts';
import type { FieldSpec, StepKind, StepSpec } from './spec.ts';
import { scanVariables, expandVariables } from './vars.ts';
import { pathCandidates, jsonStrings, isPathLike, lexicalEscape } from './paths.ts';
import type { QmpExchange, Scenario, Step, StreamMode } from './types.ts';

export interface LoadOptions {
  /** Names of the filters a scenario may use (filters/*.yaml). */
  filterNames: ReadonlySet<string>;
}

/** Stand-in directory for the load-time (lexical) path check; the run checks the real one. */
const PLACEHOLDER_TEST_DIR = '/qtest-placeholder/TEST_DIR';
const PLACEHOLDER_VARS: Record<string, string> = {
  TEST_DIR: PLACEHOLDER_TEST_DIR,
  TEST_IMG: `${PLACEHOLDER_TEST_DIR}/t.IMGFMT`,
  IMGFMT: 'IMGFMT',
  IMGPROTO: 'file',
  STATUS: '0',
};

type PathCheck = 'none' | 'path' | 'args' | 'json';

export function loadScenarioFile(file: string, options: LoadOptions): Scenario {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ValidationError([{ file, line: 1, col: 1, message: `cannot read scenario (${code})` }]);
  }
  return parseScenario(file, text, options);
}

export function parseScenario(file: string, text: string, options: LoadOptions): Scenario {
  const root = parseYamlTree(file, text);
  const v = new Validator(options);
  const scenario = v.scenario(root, file);
  if (v.diags.length > 0) {
    v.diags.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ValidationError(v.diags);
  }
  return scenario!;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestScore) {
      bestScore = d;
      best = c;
    }
  }
  return bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function suggestion(word: string, candidates: readonly string[]): string {
  const c = closest(word, candidates);
  return c ? ` (did you mean '${c}'?)` : '';
}

class Validator {
  readonly diags: Diagnostic[] = [];
  private readonly options: LoadOptions;
  constructor(options: LoadOptions) {
    this.options = options;
  }

  private error(node: YNode, message: string, offset = node.offset): void {
    this.diags.push(node.source.diag(offset, message));
  }

  private at(node: YNode): SourcePos {
    return node.source.pos(node.offset);
  }

  private map(node: YNode, what: string): YMap | undefined {
    if (node.kind === 'map') return node;
    this.error(node, `${what} must be a mapping, found ${describeNode(node)}`);
    return undefined;
  }

  /** Reports unknown and missing keys; returns the entries by name. */
  private fields(node: YMap, known: Readonly<Record<string, FieldSpec>>, owner: string): Map<string, YNode> {
    const out = new Map<string, YNode>();
    const names = Object.keys(known);
    for (const { key, value } of node.entries) {
      if (!(key.text in known)) {
        this.error(key, `unknown key '${key.text}' in ${owner}${suggestion(key.text, names)}; known keys: ${names.join(', ')}`);
        continue;
      }
      out.set(key.text, value);
    }
    for (const [name, spec] of Object.entries(known)) {
      if (spec.required && !out.has(name)) this.error(node, `${owner} is missing required key '${name}'`);
    }
    return out;
  }

  // ---- scalar checks -------------------------------------------------------------------

  private text(node: YNode, what: string, vars: readonly string[] = SCENARIO_VARIABLES, check: PathCheck = 'none'): string | undefined {
    if (node.kind !== 'scalar' || node.value === null || typeof node.value === 'boolean') {
      this.error(node, `${what} must be a string, found ${describeNode(node)}`);
      return undefined;
    }
    if (this.variables(node, vars)) this.pathCheck(node, check);
    return node.text;
  }

  /** Checks variable references; true when all are valid. */
  private variables(node: YScalar, allowed: readonly string[]): boolean {
    const { refs, errors } = scanVariables(node.text);
    let ok = true;
    for (const e of errors) {
      this.error(node, e.message, innerOffset(node, e.index));
      ok = false;
    }
    for (const ref of refs) {
      if (!allowed.includes(ref.name)) {
        this.error(node, `unknown variable $${ref.name}${suggestion(ref.name, allowed)}; known: ${allowed.map((n) => '$' + n).join(', ')}`, innerOffset(node, ref.index));
        ok = false;
      }
    }
    return ok;
  }

  private pathCheck(node: YScalar, check: PathCheck): void {
    if (check === 'none') return;
    const expanded = expandVariables(node.text, PLACEHOLDER_VARS);
    let candidates: string[];
    if (check === 'path') candidates = [expanded];
    else if (check === 'json') candidates = jsonStrings(expanded).filter(isPathLike);
    else candidates = pathCandidates(expanded).filter(isPathLike);
    for (const c of candidates) {
      const reason = lexicalEscape(c, PLACEHOLDER_TEST_DIR);
      if (!reason) continue;
      // Show the path as written and point at it inside the string when it can be found there.
      const shown = check === 'path' ? node.text : c.split(PLACEHOLDER_VARS.TEST_IMG!).join('$TEST_IMG').split(PLACEHOLDER_TEST_DIR).join('$TEST_DIR');
      const index = node.text.indexOf(shown);
      this.error(node, `path '${shown}' is refused: ${reason}; a scenario may only touch files in its TEST_DIR`, index > 0 ? innerOffset(node, index) : node.offset);
    }
  }

  private bool(node: YNode, what: string): boolean | undefined {
    if (node.kind === 'scalar' && typeof node.value === 'boolean') return node.value;
    this.error(node, `${what} must be true or false, found ${describeNode(node)}`);
    return undefined;
  }

  private number(node: YNode, what: string): number | undefined {
    if (node.kind === 'scalar' && typeof node.value === 'number' && Number.isFinite(node.value) && node.value > 0) return node.value;
    this.error(node, `${what} must be a positive number, found ${node.kind === 'scalar' && typeof node.value === 'number' ? node.text : describeNode(node)}`);
    return undefined;
  }

  private list(node: YNode, what: string): YSeq | undefined {
    if (node.kind === 'seq') return node;
    this.error(node, `${what} must be a list, found ${describeNode(node)}`);
    return undefined;
  }

  private textList(node: YNode, what: string, check: PathCheck): string[] {
    const seq = this.list(node, what);
    if (!seq) return [];
    const out: string[] = [];
    seq.items.forEach((item, i) => {
      const t = this.text(item, `${what}[${i}]`, SCENARIO_VARIABLES, check);
      if (t !== undefined) out.push(t);
    });
    return out;
  }

  private filterList(node: YNode, what: string): string[] {
    const seq = this.list(node, what);
    if (!seq) return [];
    const known = [...this.options.filterNames].sort();
    const out: string[] = [];
    for (const item of seq.items) {
      if (item.kind !== 'scalar' || typeof item.value !== 'string') {
        this.error(item, `a filter name must be a string, found ${describeNode(item)}`);
        continue;
      }
      if (!this.options.filterNames.has(item.text)) {
        this.error(item, `unknown filter '${item.text}'${suggestion(item.text, known)}; known filters: ${known.join(', ')}`);
        continue;
      }
      out.push(item.text);
    }
    return out;
  }

  private streamMode(node: YNode, what: string): StreamMode | undefined {
    if (node.kind === 'scalar' && (node.value === 'merged' || node.value === 'direct')) return node.value;
    this.error(node, `${what} must be 'merged' (2>&1 | filters) or 'direct' (| filters), found ${node.kind === 'scalar' ? `'${node.text}'` : describeNode(node)}`);
    return undefined;
  }

  // ---- scenario --------------------------------------------------------------------------

  scenario(root: YNode, file: string): Scenario | undefined {
    const top = this.map(root, 'a scenario');
    if (!top) return undefined;
    const f = this.fields(top, SCENARIO_FIELDS, 'the scenario');

    let id = '';
    const idNode = f.get('id');
    if (idNode) {
      if (idNode.kind === 'scalar' && (typeof idNode.value === 'string' || typeof idNode.value === 'number')) {
        id = idNode.text;
        const expected = path.basename(file).replace(/\.ya?ml$/, '');
        if (id !== expected) this.error(idNode, `id '${id}' does not match the file name '${path.basename(file)}' (expected id '${expected}')`);
      } else {
        this.error(idNode, `id must be a test number or name, found ${describeNode(idNode)}`);
      }
    }
    const titleNode = f.get('title');
    // The title is never expanded, so a `$` in it is just text.
    let title = '';
    if (titleNode) {
      if (titleNode.kind === 'scalar' && (typeof titleNode.value === 'string' || typeof titleNode.value === 'number')) title = titleNode.text;
      else this.error(titleNode, `title must be a string, found ${describeNode(titleNode)}`);
    }
    const groupsNode = f.get('groups');
    const groups = groupsNode ? this.plainList(groupsNode, 'groups') : [];
    const requires: Scenario['requires'] = {};
    const reqNode = f.get('requires');
    if (reqNode) {
      const m = this.map(reqNode, 'requires');
      if (m) {
        const rf = this.fields(m, { fmt: { type: 'string-list', description: '' }, proto: { type: 'string-list', description: '' } }, 'requires');
        for (const name of REQUIRES_FIELDS) {
          const n = rf.get(name);
          if (n) requires[name] = this.plainList(n, `requires.${name}`);
        }
      }
    }
    const steps: Step[] = [];
    const stepsNode = f.get('steps');
    if (stepsNode) {
      const seq = this.list(stepsNode, 'steps');
      if (seq) {
        if (seq.items.length === 0) this.error(seq, 'steps must not be empty');
        for (const item of seq.items) {
          const step = this.step(item);
          if (step) steps.push(step);
        }
      }
    }
    return { id, title, groups, requires, steps, file: path.resolve(file) };
  }

  private plainList(node: YNode, what: string): string[] {
    const seq = this.list(node, what);
    if (!seq) return [];
    const out: string[] = [];
    for (const item of seq.items) {
      if (item.kind === 'scalar' && (typeof item.value === 'string' || typeof item.value === 'number')) out.push(item.text);
      else this.error(item, `${what} entries must be names, found ${describeNode(item)}`);
    }
    return out;
  }

  // ---- steps -----------------------------------------------------------------------------

  private step(item: YNode): Step | undefined {
    if (item.kind === 'scalar') {
      if (typeof item.value !== 'string') {
        this.error(item, `a step must be a step kind or a mapping, found ${describeNode(item)}`);
        return undefined;
      }
      const kind = this.kind(item);
      if (!kind) return undefined;
      const spec: StepSpec = STEP_SPECS[kind];
      if (!spec.bare) {
        this.error(item, `step '${kind}' needs a value (e.g. '${kind}: ...')`);
        return undefined;
      }
      return this.build(kind, item, new Map());
    }
    if (item.kind === 'seq') {
      this.error(item, 'a step must be a mapping such as `- echo: text`, found a list');
      return undefined;
    }
    const kindEntries = item.entries.filter((e) => (STEP_KINDS as string[]).includes(e.key.text));
    if (kindEntries.length === 0) {
      const first = item.entries[0];
      if (!first) {
        this.error(item, 'empty step');
        return undefined;
      }
      this.kind(first.key);
      return undefined;
    }
    if (kindEntries.length > 1) {
      this.error(kindEntries[1]!.key, `a step has exactly one kind; '${kindEntries[0]!.key.text}' and '${kindEntries[1]!.key.text}' are both step kinds`);
      return undefined;
    }
    const kind = kindEntries[0]!.key.text as StepKind;
    const head = kindEntries[0]!.value;
    const siblings = item.entries.filter((e) => e !== kindEntries[0]);
    const spec: StepSpec = STEP_SPECS[kind];
    const owner = `step '${kind}'`;

    if (kind === 'exit_status') {
      for (const s of siblings) this.error(s.key, `unknown key '${s.key.text}' in ${owner}`);
      return this.exitStatus(item, head);
    }

    // `kind: {fields}` or `kind: shorthand` with the other fields as sibling keys.
    let fieldMap = new Map<string, YNode>();
    if (head.kind === 'map') {
      for (const s of siblings) this.error(s.key, `'${s.key.text}' belongs inside the mapping of ${owner}`);
      fieldMap = this.fields(head, spec.fields, owner);
    } else if (head.kind === 'scalar' && head.value === null && spec.bare && siblings.length === 0) {
      // `- check_test_img:` with nothing after it
    } else {
      if (!spec.shorthand) {
        this.error(head, `${owner} takes a mapping of ${Object.keys(spec.fields).join(', ')}, found ${describeNode(head)}`);
        return undefined;
      }
      const pseudo: YMap = { kind: 'map', entries: [...siblings], offset: item.offset, source: item.source };
      const known = Object.keys(spec.fields);
      for (const s of siblings) {
        if (s.key.text === spec.shorthand) this.error(s.key, `'${s.key.text}' is already given as the value of '${kind}'`);
      }
      fieldMap = this.fields(
        pseudo,
        Object.fromEntries(known.filter((k) => k !== spec.shorthand).map((k) => [k, { ...spec.fields[k]!, required: false }])),
        owner,
      );
      fieldMap.set(spec.shorthand, head);
      for (const [name, fspec] of Object.entries(spec.fields)) {
        if (fspec.required && !fieldMap.has(name)) this.error(item, `${owner} is missing required key '${name}'`);
      }
    }
    return this.build(kind, item, fieldMap);
  }

  private kind(key: YScalar): StepKind | undefined {
    if ((STEP_KINDS as string[]).includes(key.text)) return key.text as StepKind;
    this.error(key, `unknown step kind '${key.text}'${suggestion(key.text, STEP_KINDS)}; known kinds: ${STEP_KINDS.join(', ')}`);
    return undefined;
  }

  private build(kind: StepKind, item: YNode, f: Map<string, YNode>): Step | undefined {
    const at = this.at(item);
    const before = this.diags.length;
    const str = (name: string, check: PathCheck = 'none'): string | undefined => {
      const n = f.get(name);
      return n ? this.text(n, name, SCENARIO_VARIABLES, check) : undefined;
    };
    const boolOr = (name: string, dflt: boolean): boolean => {
      const n = f.get(name);
      return n ? (this.bool(n, name) ?? dflt) : dflt;
    };
    const list = (name: string, check: PathCheck): string[] => {
      const n = f.get(name);
      return n ? this.textList(n, name, check) : [];
    };
    let step: Step | undefined;
    switch (kind) {
      case 'section':
        step = { kind, at, title: str('title') ?? '', blankAfter: boolOr('blank_after', true) };
        break;
      case 'subsection':
        step = { kind, at, title: str('title') ?? '' };
        break;
      case 'echo':
        step = { kind, at, text: str('text') ?? '', newline: boolOr('newline', true) };
        break;
      case 'make_test_img': {
        const opts = str('opts', 'args');
        step = { kind, at, size: str('size') ?? '', image: str('image', 'path') ?? '$TEST_IMG', ...(opts !== undefined ? { opts } : {}) };
        break;
      }
      case 'check_test_img':
        step = { kind, at, args: list('args', 'args'), image: str('image', 'path') ?? '$TEST_IMG' };
        break;
      case 'qemu-img':
      case 'qemu-io': {
        const filtersNode = f.get('filters');
        const stderrNode = f.get('stderr');
        step = {
          kind,
          at,
          args: list('args', 'args'),
          filters: filtersNode ? this.filterList(filtersNode, 'filters') : [],
          stderr: stderrNode ? (this.streamMode(stderrNode, 'stderr') ?? 'direct') : 'direct',
        };
        break;
      }
      case 'truncate': {
        const size = str('size');
        if (size !== undefined && !/^\d+[KMGT]?$/.test(size)) this.error(f.get('size')!, `size '${size}' must be a number of bytes with an optional K, M, G or T suffix`);
        step = { kind, at, file: str('file', 'path') ?? '', size: size ?? '0' };
        break;
      }
      case 'touch':
      case 'file_size':
      case 'rm':
        step = { kind, at, file: str('file', 'path') ?? '' };
        break;
      case 'qmp': {
        const exNode = f.get('exchange');
        step = { kind, at, launch: list('launch', 'args'), exchange: exNode ? this.exchanges(exNode) : [] };
        break;
      }
      case 'exit_status':
        return undefined;
    }
    return this.diags.length === before ? step : undefined;
  }

  private exchanges(node: YNode): QmpExchange[] {
    const seq = this.list(node, 'exchange');
    if (!seq) return [];
    if (seq.items.length === 0) this.error(seq, 'exchange must not be empty');
    const out: QmpExchange[] = [];
    for (const item of seq.items) {
      const m = this.map(item, 'an exchange entry');
      if (!m) continue;
      const f = this.fields(m, EXCHANGE_FIELDS, 'the exchange entry');
      const sendNode = f.get('send');
      const send = sendNode ? this.text(sendNode, 'send', SCENARIO_VARIABLES, 'json') : undefined;
      const untilNode = f.get('until');
      const until = untilNode ? this.text(untilNode, 'until') : undefined;
      const timeoutNode = f.get('timeout');
      const timeoutSeconds = timeoutNode ? (this.number(timeoutNode, 'timeout') ?? 10) : 10;
      if (send !== undefined) out.push({ at: this.at(m), send, timeoutSeconds, ...(until !== undefined && until !== '' ? { until } : {}) });
    }
    return out;
  }

  private exitStatus(item: YNode, head: YNode): Step | undefined {
    const m = this.map(head, "step 'exit_status'");
    if (!m) return undefined;
    const cases = new Map<number, string>();
    let dflt: string | undefined;
    const before = this.diags.length;
    if (m.entries.length === 0) this.error(m, "step 'exit_status' needs at least one case");
    const vars = [...SCENARIO_VARIABLES, STATUS_VARIABLE];
    for (const { key, value } of m.entries) {
      const message = this.text(value, `the message for status ${key.text}`, vars);
      if (key.text === 'default') {
        dflt = message;
      } else if (/^\d+$/.test(key.text) && Number(key.text) <= 255) {
        if (message !== undefined) cases.set(Number(key.text), message);
      } else {
        this.error(key, `exit_status keys are exit statuses (0-255) or 'default', found '${key.text}'`);
      }
    }
    if (this.diags.length !== before) return undefined;
    return { kind: 'exit_status', at: this.at(item), cases, ...(dflt !== undefined ? { default: dflt } : {}) };
  }
}
