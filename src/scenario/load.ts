/**
 * Scenario YAML → validated Scenario. Every problem found is collected with its
 * `file:line:col`, and all of them are thrown together as one ValidationError.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RuleParser, INLINE_RULE_KINDS } from '../filters/load.ts';
import type { FilterRef } from '../filters/apply.ts';
import { ValidationError } from './location.ts';
import type { Diagnostic, SourcePos } from './location.ts';
import { parseYamlTree, describeNode, innerOffset } from './yaml-tree.ts';
import type { YMap, YNode, YScalar, YSeq } from './yaml-tree.ts';
import {
  ASSIGNING_KEYS,
  EXCHANGE_FIELDS,
  MACRO_FIELDS,
  READONLY_VARIABLES,
  REQUIRES_FIELDS,
  SCENARIO_FIELDS,
  SCENARIO_VARIABLES,
  STATUS_VARIABLE,
  STEP_KINDS,
  STEP_SPECS,
} from './spec.ts';
import type { FieldSpec, StepKind, StepSpec } from './spec.ts';
import { scanVariables, expandText, ExpansionError } from './vars.ts';
import { pathCandidates, jsonStrings, isPathLike, lexicalEscape } from './paths.ts';
import type { Assignment, CallStep, Condition, Macro, MacroParam, QmpExchange, Scenario, Step, StdoutMode, StreamMode } from './types.ts';

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
  IMGOPTS: '',
  CLUSTER_SIZE: '',
  STATUS: '0',
};

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_WHILE_MAX = 100_000;
/** Limits that keep a hostile scenario from running (or waiting) practically forever. */
const MAX_WHILE_ROUNDS = 10_000_000;
const MAX_QMP_TIMEOUT_S = 3600;

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
  const v = new Validator(options, declaredNames(root));
  const scenario = v.scenario(root, file);
  if (v.diags.length > 0) {
    v.diags.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ValidationError(v.diags);
  }
  return scenario!;
}

/**
 * Every variable name the scenario assigns anywhere (`set` keys, `var`/`into` values, macro
 * params), so a reference before its assignment in the file (a loop, a macro) is still known.
 */
function declaredNames(root: YNode): Set<string> {
  const names = new Set<string>();
  const walk = (node: YNode, parentKey: string | null): void => {
    if (node.kind === 'seq') node.items.forEach((n) => walk(n, null));
    if (node.kind !== 'map') return;
    for (const { key, value } of node.entries) {
      if ((key.text === 'set' || (key.text === 'params' && parentKey === 'macro')) && value.kind === 'map') for (const e of value.entries) names.add(e.key.text);
      if ((ASSIGNING_KEYS as readonly string[]).includes(key.text) && value.kind === 'scalar' && typeof value.value === 'string') names.add(value.text);
      walk(value, parentKey === 'macros' ? 'macro' : key.text);
    }
  };
  walk(root, null);
  for (const n of [...names]) if (!NAME_RE.test(n)) names.delete(n);
  return names;
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
  /** Variables a string may use: the built-in ones and every name the scenario assigns. */
  private readonly known: readonly string[];
  private readonly rules: RuleParser;
  private readonly calls: { step: CallStep; node: YNode; argNodes: Map<string, YNode> }[] = [];
  private inlineCount = 0;

  constructor(options: LoadOptions, declared: ReadonlySet<string>) {
    this.options = options;
    this.known = [...SCENARIO_VARIABLES, ...[...declared].filter((n) => !(SCENARIO_VARIABLES as readonly string[]).includes(n) && n !== STATUS_VARIABLE)];
    this.rules = new RuleParser((node, message) => this.error(node, message));
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

  private text(node: YNode, what: string, vars: readonly string[] = this.known, check: PathCheck = 'none'): string | undefined {
    if (node.kind !== 'scalar' || node.value === null || typeof node.value === 'boolean') {
      this.error(node, `${what} must be a string, found ${describeNode(node)}`);
      return undefined;
    }
    if (this.variables(node, vars)) this.pathCheck(node, check);
    return node.text;
  }

  /** Checks variable references (and arithmetic syntax); true when all are valid. */
  private variables(node: YScalar, allowed: readonly string[], text = node.text, shift = 0): boolean {
    const { refs, errors } = scanVariables(text);
    let ok = true;
    for (const e of errors) {
      this.error(node, e.message, innerOffset(node, Math.max(0, e.index + shift)));
      ok = false;
    }
    for (const ref of refs) {
      if (!allowed.includes(ref.name)) {
        this.error(node, `unknown variable $${ref.name}${suggestion(ref.name, allowed)}; known: ${allowed.map((n) => '$' + n).join(', ')}`, innerOffset(node, Math.max(0, ref.index + shift)));
        ok = false;
      }
    }
    return ok;
  }

  /** Arithmetic text (a condition, an offset): syntax and names checked as if inside $(( )). */
  private arithmetic(node: YNode, what: string): string | undefined {
    if (node.kind !== 'scalar' || node.value === null || typeof node.value === 'boolean') {
      this.error(node, `${what} must be a number or an arithmetic expression, found ${describeNode(node)}`);
      return undefined;
    }
    return this.variables(node, this.known, `$((${node.text}))`, -3) ? node.text : undefined;
  }

  private pathCheck(node: YScalar, check: PathCheck): void {
    if (check === 'none') return;
    let expanded: string;
    try {
      // Variables the scenario sets are only known when it runs; the run checks those paths.
      expanded = expandText(node.text, (name) => PLACEHOLDER_VARS[name] ?? '1');
    } catch (err) {
      if (err instanceof ExpansionError) return;
      throw err;
    }
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
      const t = this.text(item, `${what}[${i}]`, this.known, check);
      if (t !== undefined) out.push(t);
    });
    return out;
  }

  /** A variable the step assigns. */
  private name(node: YNode, what: string): string | undefined {
    if (node.kind !== 'scalar' || typeof node.value !== 'string' || !NAME_RE.test(node.text)) {
      this.error(node, `${what} must be a variable name (letters, digits, _), found ${node.kind === 'scalar' ? `'${node.text}'` : describeNode(node)}`);
      return undefined;
    }
    if ((READONLY_VARIABLES as readonly string[]).includes(node.text)) {
      this.error(node, `$${node.text} cannot be assigned; it is set by the runner`);
      return undefined;
    }
    return node.text;
  }

  private filterList(node: YNode, what: string): FilterRef[] {
    const seq = this.list(node, what);
    if (!seq) return [];
    const known = [...this.options.filterNames].sort();
    const out: FilterRef[] = [];
    for (const item of seq.items) {
      if (item.kind === 'map') {
        const rule = this.rules.rule(item, INLINE_RULE_KINDS);
        if (rule) {
          const at = this.at(item);
          out.push({ name: `inline ${rule.kind} #${++this.inlineCount} (${path.basename(at.file)}:${at.line})`, lines: 'sed', rules: [rule], at });
        }
        continue;
      }
      if (item.kind !== 'scalar' || typeof item.value !== 'string') {
        this.error(item, `a filter must be a filter name or an inline rule such as {grep: {regex: x}}, found ${describeNode(item)}`);
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

  private stdoutMode(node: YNode, what: string): StdoutMode | undefined {
    if (node.kind === 'scalar' && (node.value === 'show' || node.value === 'discard')) return node.value;
    this.error(node, `${what} must be 'show' or 'discard' (>/dev/null), found ${node.kind === 'scalar' ? `'${node.text}'` : describeNode(node)}`);
    return undefined;
  }

  /** printf escapes as written in single quotes; YAML double-quote escapes would decode them. */
  private bytes(node: YNode, what: string): string | undefined {
    const t = this.text(node, what);
    if (t === undefined) return undefined;
    if (/[^\x20-\x7e]/.test(t)) {
      this.error(node, `${what} holds a control or non-ASCII character: YAML decoded an escape; write the bytes in single quotes, e.g. '\\xff\\x00'`);
      return undefined;
    }
    return t;
  }

  private condition(node: YNode, what: string): Condition | undefined {
    if (node.kind === 'map') {
      if (node.entries.length !== 1 || !['equal', 'not_equal'].includes(node.entries[0]!.key.text)) {
        this.error(node, `${what} must be arithmetic text or one of {equal: [A, B]}, {not_equal: [A, B]}`);
        return undefined;
      }
      const { key, value } = node.entries[0]!;
      const seq = this.list(value, key.text);
      if (!seq) return undefined;
      if (seq.items.length !== 2) {
        this.error(seq, `${key.text} compares exactly two texts, found ${seq.items.length}`);
        return undefined;
      }
      const left = this.text(seq.items[0]!, `${key.text}[0]`);
      const right = this.text(seq.items[1]!, `${key.text}[1]`);
      if (left === undefined || right === undefined) return undefined;
      return { kind: key.text as 'equal' | 'not_equal', left, right };
    }
    const expr = this.arithmetic(node, what);
    return expr === undefined ? undefined : { kind: 'arith', expr };
  }

  private textMap(node: YNode, what: string, allowNull: boolean): { entries: { key: YScalar; value?: string; node: YNode }[] } {
    const m = this.map(node, what);
    const entries: { key: YScalar; value?: string; node: YNode }[] = [];
    if (!m) return { entries };
    for (const { key, value } of m.entries) {
      if (!NAME_RE.test(key.text)) {
        this.error(key, `'${key.text}' is not a variable name (letters, digits, _)`);
        continue;
      }
      if (allowNull && value.kind === 'scalar' && value.value === null) {
        entries.push({ key, node: value });
        continue;
      }
      const t = this.text(value, `${what}.${key.text}`);
      if (t !== undefined) entries.push({ key, value: t, node: value });
    }
    return { entries };
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
        const rf = this.fields(m, Object.fromEntries(REQUIRES_FIELDS.map((n) => [n, { type: 'string-list', description: '' }])), 'requires');
        for (const name of REQUIRES_FIELDS) {
          const n = rf.get(name);
          if (n) requires[name] = this.plainList(n, `requires.${name}`);
        }
      }
    }
    const macros = new Map<string, Macro>();
    const macrosNode = f.get('macros');
    if (macrosNode) {
      const m = this.map(macrosNode, 'macros');
      if (m) for (const { key, value } of m.entries) {
        const macro = this.macro(key, value);
        if (macro) macros.set(macro.name, macro);
      }
    }
    const stepsNode = f.get('steps');
    const steps = stepsNode ? this.steps(stepsNode, 'steps') : [];
    for (const call of this.calls) this.checkCall(call, macros);
    return { id, title, groups, requires, macros, steps, file: path.resolve(file) };
  }

  private macro(key: YScalar, value: YNode): Macro | undefined {
    if (!NAME_RE.test(key.text)) {
      this.error(key, `macro name '${key.text}' must be letters, digits and _`);
      return undefined;
    }
    const m = this.map(value, `macro '${key.text}'`);
    if (!m) return undefined;
    const f = this.fields(m, MACRO_FIELDS, `macro '${key.text}'`);
    const params: MacroParam[] = [];
    const pn = f.get('params');
    if (pn) {
      for (const e of this.textMap(pn, 'params', true).entries) {
        if ((READONLY_VARIABLES as readonly string[]).includes(e.key.text)) this.error(e.key, `$${e.key.text} cannot be a parameter; it is set by the runner`);
        else params.push({ name: e.key.text, ...(e.value !== undefined ? { default: e.value } : {}) });
      }
    }
    const sn = f.get('steps');
    const steps = sn ? this.steps(sn, 'steps') : [];
    return { name: key.text, params, steps, at: this.at(key) };
  }

  private checkCall(call: { step: CallStep; node: YNode; argNodes: Map<string, YNode> }, macros: Map<string, Macro>): void {
    const macro = macros.get(call.step.macro);
    if (!macro) {
      const names = [...macros.keys()];
      this.error(call.node, `unknown macro '${call.step.macro}'${suggestion(call.step.macro, names)}; macros: ${names.join(', ') || '(none)'}`);
      return;
    }
    const params = macro.params.map((p) => p.name);
    for (const [name, node] of call.argNodes) {
      if (!params.includes(name)) this.error(node, `macro '${macro.name}' has no param '${name}'${suggestion(name, params)}; params: ${params.join(', ') || '(none)'}`);
    }
    for (const p of macro.params) {
      if (p.default === undefined && !call.argNodes.has(p.name)) this.error(call.node, `call of macro '${macro.name}' is missing param '${p.name}'`);
    }
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

  private steps(node: YNode, what: string): Step[] {
    const seq = this.list(node, what);
    if (!seq) return [];
    if (seq.items.length === 0) this.error(seq, `${what} must not be empty`);
    const out: Step[] = [];
    for (const item of seq.items) {
      const step = this.step(item);
      if (step) out.push(step);
    }
    return out;
  }

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

    if (kind === 'exit_status' || kind === 'set') {
      for (const s of siblings) this.error(s.key, `unknown key '${s.key.text}' in ${owner}`);
      return kind === 'exit_status' ? this.exitStatus(item, head) : this.setStep(item, head);
    }

    // `kind: {fields}` or `kind: shorthand` with the other fields as sibling keys.
    let fieldMap = new Map<string, YNode>();
    if (head.kind === 'map' && spec.fields[spec.shorthand ?? '']?.type !== 'condition') {
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
      return n ? this.text(n, name, this.known, check) : undefined;
    };
    const int = (name: string): string => {
      const n = f.get(name);
      return n ? (this.arithmetic(n, name) ?? '0') : '0';
    };
    const boolOr = (name: string, dflt: boolean): boolean => {
      const n = f.get(name);
      return n ? (this.bool(n, name) ?? dflt) : dflt;
    };
    const list = (name: string, check: PathCheck): string[] => {
      const n = f.get(name);
      return n ? this.textList(n, name, check) : [];
    };
    const filters = (name = 'filters'): FilterRef[] => {
      const n = f.get(name);
      return n ? this.filterList(n, name) : [];
    };
    const into = (): { into?: string } => {
      const n = f.get('into');
      const name = n ? this.name(n, 'into') : undefined;
      return name !== undefined ? { into: name } : {};
    };
    const nested = (name: string): Step[] => {
      const n = f.get(name);
      return n ? this.steps(n, name) : [];
    };
    const retries = (): number => {
      const n = f.get('retries');
      if (!n) return 0;
      const v = this.number(n, 'retries');
      if (v !== undefined && (!Number.isInteger(v) || v > 10)) this.error(n, 'retries must be a whole number from 1 to 10');
      return v ?? 0;
    };
    const opt = (key: string, value: string | undefined): Record<string, string> => (value !== undefined ? { [key]: value } : {});
    let step: Step | undefined;
    switch (kind) {
      case 'section':
        step = { kind, at, title: str('title') ?? '', blankAfter: boolOr('blank_after', true) };
        break;
      case 'subsection':
        step = { kind, at, title: str('title') ?? '' };
        break;
      case 'echo':
        step = { kind, at, text: str('text') ?? '', newline: boolOr('newline', true), filters: filters(), ...into() };
        break;
      case 'printf':
        step = { kind, at, format: str('format') ?? '', args: list('args', 'none'), ...into() };
        break;
      case 'make_test_img':
        step = {
          kind,
          at,
          image: str('image', 'path') ?? '$TEST_IMG',
          args: list('args', 'args'),
          ...opt('size', str('size')),
          ...opt('opts', str('opts', 'args')),
          ...opt('backing', str('backing', 'path')),
          ...opt('backingFmt', str('backing_fmt')),
          ...opt('fmt', str('fmt')),
          ...opt('clusterSize', str('cluster_size')),
          ...opt('imgopts', str('imgopts', 'args')),
        };
        break;
      case 'check_test_img':
        step = { kind, at, args: list('args', 'args'), image: str('image', 'path') ?? '$TEST_IMG', filters: filters() };
        break;
      case 'img_info':
        step = { kind, at, args: list('args', 'args'), image: str('image', 'path') ?? '$TEST_IMG', formatSpecific: boolOr('format_specific', false), filters: filters() };
        break;
      case 'qemu-img':
      case 'qemu-io': {
        const stderrNode = f.get('stderr');
        const stdoutNode = f.get('stdout');
        step = {
          kind,
          at,
          args: list('args', 'args'),
          filters: filters(),
          stderr: stderrNode ? (this.streamMode(stderrNode, 'stderr') ?? 'direct') : 'direct',
          stdout: stdoutNode ? (this.stdoutMode(stdoutNode, 'stdout') ?? 'show') : 'show',
          noFmt: kind === 'qemu-io' ? boolOr('no_fmt', false) : false,
          retries: retries(),
          ...opt('stdin', str('stdin')),
          ...into(),
        };
        break;
      }
      case 'io_pattern':
        step = {
          kind,
          at,
          op: str('op') ?? '',
          start: int('start'),
          size: int('size'),
          step: int('step'),
          count: int('count'),
          pattern: str('pattern') ?? '',
          image: str('image', 'path') ?? '$TEST_IMG',
        };
        break;
      case 'truncate': {
        const size = str('size');
        if (size !== undefined && !size.includes('$') && !/^\d+[KMGT]?$/.test(size)) this.error(f.get('size')!, `size '${size}' must be a number of bytes with an optional K, M, G or T suffix`);
        step = { kind, at, file: str('file', 'path') ?? '', size: size ?? '0' };
        break;
      }
      case 'touch':
      case 'rm':
        step = { kind, at, file: str('file', 'path') ?? '' };
        break;
      case 'mkdir':
        step = { kind, at, file: str('dir', 'path') ?? '' };
        break;
      case 'file_size':
        step = { kind, at, file: str('file', 'path') ?? '', allocated: boolOr('allocated', false), ...into() };
        break;
      case 'poke_file': {
        const dn = f.get('data');
        step = { kind, at, file: str('file', 'path') ?? '', offset: int('offset'), data: (dn ? this.bytes(dn, 'data') : undefined) ?? '' };
        break;
      }
      case 'poke_file_be':
      case 'poke_file_le':
        step = { kind, at, file: str('file', 'path') ?? '', offset: int('offset'), size: int('size'), value: int('value') };
        break;
      case 'peek_file_be':
      case 'peek_file_le':
      case 'peek_file_raw':
        step = { kind, at, file: str('file', 'path') ?? '', offset: int('offset'), size: int('size'), ...into() };
        break;
      case 'qcow2':
        step = { kind, at, args: list('args', 'none'), image: str('image', 'path') ?? '$TEST_IMG', filters: filters() };
        break;
      case 'qmp': {
        const exNode = f.get('exchange');
        step = { kind, at, launch: list('launch', 'args'), exchange: exNode ? this.exchanges(exNode) : [] };
        break;
      }
      case 'if': {
        const cn = f.get('condition');
        const condition = cn ? this.condition(cn, 'condition') : undefined;
        step = { kind, at, condition: condition ?? { kind: 'arith', expr: '0' }, then: nested('then'), else: nested('else') };
        break;
      }
      case 'foreach': {
        const vn = f.get('values');
        let values: string[] | string = [];
        if (vn) values = vn.kind === 'seq' ? this.textList(vn, 'values', 'none') : (this.text(vn, 'values') ?? []);
        const varNode = f.get('var');
        step = { kind, at, var: (varNode ? this.name(varNode, 'var') : undefined) ?? '', values, steps: nested('steps') };
        break;
      }
      case 'while': {
        const cn = f.get('condition');
        const condition = cn ? this.condition(cn, 'condition') : undefined;
        const mn = f.get('max');
        let max = mn ? (this.number(mn, 'max') ?? DEFAULT_WHILE_MAX) : DEFAULT_WHILE_MAX;
        if (mn && (!Number.isInteger(max) || max > MAX_WHILE_ROUNDS)) {
          this.error(mn, `max must be a whole number of rounds up to ${MAX_WHILE_ROUNDS}`);
          max = DEFAULT_WHILE_MAX;
        }
        step = { kind, at, condition: condition ?? { kind: 'arith', expr: '0' }, steps: nested('steps'), max };
        break;
      }
      case 'call': {
        const mn = f.get('macro');
        const macro = mn && mn.kind === 'scalar' && typeof mn.value === 'string' ? mn.text : undefined;
        if (mn && macro === undefined) this.error(mn, `macro must be a macro name, found ${describeNode(mn)}`);
        const an = f.get('args');
        const args: Assignment[] = [];
        const argNodes = new Map<string, YNode>();
        if (an) {
          for (const e of this.textMap(an, 'args', false).entries) {
            args.push({ name: e.key.text, value: e.value ?? '', at: this.at(e.key) });
            argNodes.set(e.key.text, e.key);
          }
        }
        const call: CallStep = { kind, at, macro: macro ?? '', args };
        if (macro !== undefined) this.calls.push({ step: call, node: mn!, argNodes });
        step = call;
        break;
      }
      case 'exit_status':
      case 'set':
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
      const send = sendNode ? this.text(sendNode, 'send', this.known, 'json') : undefined;
      const untilNode = f.get('until');
      const until = untilNode ? this.text(untilNode, 'until') : undefined;
      const timeoutNode = f.get('timeout');
      let timeoutSeconds = timeoutNode ? (this.number(timeoutNode, 'timeout') ?? 10) : 10;
      if (timeoutNode && timeoutSeconds > MAX_QMP_TIMEOUT_S) {
        this.error(timeoutNode, `timeout must be at most ${MAX_QMP_TIMEOUT_S} seconds`);
        timeoutSeconds = 10;
      }
      if (send !== undefined) out.push({ at: this.at(m), send, timeoutSeconds, ...(until !== undefined && until !== '' ? { until } : {}) });
    }
    return out;
  }

  private setStep(item: YNode, head: YNode): Step | undefined {
    const m = this.map(head, "step 'set'");
    if (!m) return undefined;
    const before = this.diags.length;
    if (m.entries.length === 0) this.error(m, "step 'set' needs at least one NAME: value");
    const assignments: Assignment[] = [];
    for (const { key, value } of m.entries) {
      const name = this.name(key, 'a set key');
      const text = this.text(value, `the value of ${key.text}`);
      if (name !== undefined && text !== undefined) assignments.push({ name, value: text, at: this.at(key) });
    }
    if (this.diags.length !== before) return undefined;
    return { kind: 'set', at: this.at(item), assignments };
  }

  private exitStatus(item: YNode, head: YNode): Step | undefined {
    const m = this.map(head, "step 'exit_status'");
    if (!m) return undefined;
    const cases = new Map<number, string>();
    let dflt: string | undefined;
    const before = this.diags.length;
    if (m.entries.length === 0) this.error(m, "step 'exit_status' needs at least one case");
    const vars = [...this.known, STATUS_VARIABLE];
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
