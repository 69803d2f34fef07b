/**
 * Reads filters/*.yaml into FilterDefs, with the same file:line:col validation as scenarios.
 * The rule parser is shared with scenarios, whose `filters:` lists may hold rules inline.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ValidationError } from '../scenario/location.ts';
import type { Diagnostic } from '../scenario/location.ts';
import { parseYamlTree, describeNode } from '../scenario/yaml-tree.ts';
import type { YMap, YNode } from '../scenario/yaml-tree.ts';
import { scanVariables } from '../scenario/vars.ts';
import { FILTER_VARIABLES } from './types.ts';
import type { FilterDef, FilterRule, FormattingSpec, LineRule, Pattern } from './types.ts';

/** Rule kinds a filter file may use. */
export const RULE_KINDS = ['replace', 'delete', 'change_range', 'grep', 'tr', 'img_create', 'img_info_blocks'] as const;
/** Rule kinds a scenario may write inline in a `filters:` list (one rule = one `| sed`/`| grep`). */
export const INLINE_RULE_KINDS = ['replace', 'delete', 'grep', 'tr'] as const;

type Report = (node: YNode, message: string) => void;

/** Parses filter rules, reporting problems through `err` (file:line:col comes from the node). */
export class RuleParser {
  private readonly err: Report;
  constructor(err: Report) {
    this.err = err;
  }

  private asMap(node: YNode, what: string): YMap | undefined {
    if (node.kind === 'map') return node;
    this.err(node, `${what} must be a mapping, found ${describeNode(node)}`);
    return undefined;
  }

  private keys(m: YMap, known: readonly string[], required: readonly string[], owner: string): Map<string, YNode> {
    const out = new Map<string, YNode>();
    for (const { key, value } of m.entries) {
      if (known.includes(key.text)) out.set(key.text, value);
      else this.err(key, `unknown key '${key.text}' in ${owner}; known keys: ${known.join(', ')}`);
    }
    for (const r of required) if (!out.has(r)) this.err(m, `${owner} is missing required key '${r}'`);
    return out;
  }

  str(node: YNode | undefined, what: string): string | undefined {
    if (!node) return undefined;
    if (node.kind === 'scalar' && (typeof node.value === 'string' || typeof node.value === 'number')) return node.text;
    this.err(node, `${what} must be a string, found ${describeNode(node)}`);
    return undefined;
  }

  private bool(node: YNode | undefined, what: string, dflt: boolean): boolean {
    if (!node) return dflt;
    if (node.kind === 'scalar' && typeof node.value === 'boolean') return node.value;
    this.err(node, `${what} must be true or false, found ${describeNode(node)}`);
    return dflt;
  }

  private count(node: YNode | undefined, what: string): number {
    if (!node) return 0;
    if (node.kind === 'scalar' && typeof node.value === 'number' && Number.isInteger(node.value) && node.value >= 0) return node.value;
    this.err(node, `${what} must be a whole number >= 0, found ${describeNode(node)}`);
    return 0;
  }

  private checkTextVars(node: YNode, value: string): void {
    const { refs, errors } = scanVariables(value);
    for (const e of errors) this.err(node, e.message);
    for (const r of refs) if (!(FILTER_VARIABLES as readonly string[]).includes(r.name)) this.err(node, `unknown variable $${r.name}; filters know ${FILTER_VARIABLES.map((v) => '$' + v).join(', ')}`);
  }

  checkRegex(node: YNode, value: string): void {
    for (const m of value.matchAll(/\$\{([^}]*)\}/g)) {
      if (!(FILTER_VARIABLES as readonly string[]).includes(m[1]!)) this.err(node, `unknown variable \${${m[1]}}; filters know ${FILTER_VARIABLES.map((v) => '${' + v + '}').join(', ')}`);
    }
    try {
      new RegExp(value.replace(/\$\{[^}]*\}/g, 'x'));
    } catch (e) {
      this.err(node, `invalid regular expression: ${(e as Error).message}`);
    }
  }

  private pattern(m: Map<string, YNode>, owner: string): Pattern | undefined {
    const t = m.get('text');
    const r = m.get('regex');
    if (t && r) {
      this.err(r, `${owner} takes either 'text' or 'regex', not both`);
      return undefined;
    }
    if (t) {
      const s = this.str(t, 'text');
      if (s === undefined) return undefined;
      this.checkTextVars(t, s);
      return { text: s };
    }
    if (r) {
      const s = this.str(r, 'regex');
      if (s === undefined) return undefined;
      this.checkRegex(r, s);
      return { regex: s };
    }
    return undefined;
  }

  private regexOnly(node: YNode | undefined, what: string): string | undefined {
    const s = this.str(node, what);
    if (s !== undefined && node) this.checkRegex(node, s);
    return s;
  }

  /** One `- kind: { ... }` rule. */
  rule(node: YNode, allowed: readonly string[]): FilterRule | undefined {
    const m = this.asMap(node, 'a rule');
    if (!m) return undefined;
    if (m.entries.length !== 1) {
      this.err(m, `a rule has exactly one kind (${allowed.join(', ')})`);
      return undefined;
    }
    const { key, value } = m.entries[0]!;
    if (!allowed.includes(key.text)) {
      this.err(key, `unknown rule kind '${key.text}'; known kinds: ${allowed.join(', ')}`);
      return undefined;
    }
    const body = this.asMap(value, `rule '${key.text}'`);
    if (!body) return undefined;
    const owner = `rule '${key.text}'`;
    switch (key.text) {
      case 'replace': {
        const f = this.keys(body, ['text', 'regex', 'with', 'global'], ['with'], owner);
        const p = this.pattern(f, owner);
        if (!p && !f.has('text') && !f.has('regex')) this.err(body, `${owner} needs 'text' or 'regex'`);
        const w = this.str(f.get('with'), 'with');
        if (!p || w === undefined) return undefined;
        return { kind: 'replace', pattern: p, with: w, global: this.bool(f.get('global'), 'global', false) };
      }
      case 'delete':
      case 'grep': {
        const known = key.text === 'grep' ? ['text', 'regex', 'invert', 'after'] : ['text', 'regex'];
        const f = this.keys(body, known, [], owner);
        const p = this.pattern(f, owner);
        if (!p) {
          if (!f.has('text') && !f.has('regex')) this.err(body, `${owner} needs 'text' or 'regex'`);
          return undefined;
        }
        if (key.text === 'delete') return { kind: 'delete', pattern: p };
        return { kind: 'grep', pattern: p, invert: this.bool(f.get('invert'), 'invert', false), after: this.count(f.get('after'), 'after') };
      }
      case 'tr': {
        const f = this.keys(body, ['from', 'to'], ['from', 'to'], owner);
        const from = this.str(f.get('from'), 'from');
        const to = this.str(f.get('to'), 'to');
        if (from === undefined || to === undefined) return undefined;
        if (from.length !== to.length) {
          this.err(body, `${owner}: 'from' and 'to' must have the same number of characters`);
          return undefined;
        }
        return { kind: 'tr', from, to };
      }
      case 'change_range': {
        const f = this.keys(body, ['from', 'to', 'text'], ['from', 'to', 'text'], owner);
        const from = this.regexOnly(f.get('from'), 'from');
        const to = this.regexOnly(f.get('to'), 'to');
        const text = this.str(f.get('text'), 'text');
        if (from === undefined || to === undefined || text === undefined) return undefined;
        return { kind: 'change_range', from: { regex: from }, to: { regex: to }, text };
      }
      case 'img_info_blocks': {
        const f = this.keys(body, ['keep_format_specific'], [], owner);
        return { kind: 'img_info_blocks', keepFormatSpecific: this.bool(f.get('keep_format_specific'), 'keep_format_specific', false) };
      }
      case 'img_create': {
        const f = this.keys(body, ['filenames', 'formatting'], ['filenames', 'formatting'], owner);
        const filenames: LineRule[] = [];
        const fn = f.get('filenames');
        if (fn) {
          if (fn.kind !== 'seq') this.err(fn, `filenames must be a list of rules, found ${describeNode(fn)}`);
          else
            for (const item of fn.items) {
              const r = this.rule(item, ['replace', 'delete']);
              if (r) filenames.push(r as LineRule);
            }
        }
        const fm = f.get('formatting');
        const formatting = fm ? this.formattingSpec(fm) : undefined;
        if (!formatting) return undefined;
        return { kind: 'img_create', filenames, formatting };
      }
    }
    return undefined;
  }

  private formattingSpec(node: YNode): FormattingSpec | undefined {
    const m = this.asMap(node, 'formatting');
    if (!m) return undefined;
    const known = ['match', 'split', 'option', 'keep_prefixes', 'keep_containing', 'keep_containing_unless_imgopts_match', 'rank'];
    const f = this.keys(m, known, ['match', 'split', 'option', 'keep_prefixes', 'rank'], 'formatting');
    const match = this.regexOnly(f.get('match'), 'match');
    const split = this.str(f.get('split'), 'split');
    const option = this.regexOnly(f.get('option'), 'option');
    const prefixesNode = f.get('keep_prefixes');
    const keepPrefixes: string[] = [];
    if (prefixesNode) {
      if (prefixesNode.kind !== 'seq') this.err(prefixesNode, 'keep_prefixes must be a list');
      else
        for (const item of prefixesNode.items) {
          const s = this.str(item, 'a prefix');
          if (s !== undefined) keepPrefixes.push(s);
        }
    }
    const rank: Record<string, number> = {};
    const rankNode = f.get('rank');
    if (rankNode) {
      const rm = this.asMap(rankNode, 'rank');
      if (rm)
        for (const { key, value } of rm.entries) {
          if (value.kind === 'scalar' && typeof value.value === 'number' && Number.isInteger(value.value) && value.value >= 0 && value.value <= 9) rank[key.text] = value.value;
          else this.err(value, `rank of '${key.text}' must be a digit 0-9, found ${describeNode(value)}`);
        }
    }
    const keepContaining = this.str(f.get('keep_containing'), 'keep_containing');
    const unless = this.regexOnly(f.get('keep_containing_unless_imgopts_match'), 'keep_containing_unless_imgopts_match');
    if (match === undefined || split === undefined || option === undefined) return undefined;
    return {
      match,
      split,
      option,
      keepPrefixes,
      rank,
      ...(keepContaining !== undefined ? { keepContaining } : {}),
      ...(unless !== undefined ? { keepContainingUnlessImgoptsMatch: unless } : {}),
    };
  }
}

export function loadFilterDir(dir: string): Map<string, FilterDef> {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.yaml')).sort();
  } catch (err) {
    throw new ValidationError([{ file: dir, line: 1, col: 1, message: `cannot read the filter folder (${(err as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  const out = new Map<string, FilterDef>();
  const diags: Diagnostic[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      const def = parseFilter(file, fs.readFileSync(file, 'utf8'));
      out.set(def.name, def);
    } catch (err) {
      if (err instanceof ValidationError) diags.push(...err.diagnostics);
      else throw err;
    }
  }
  if (diags.length > 0) throw new ValidationError(diags);
  return out;
}

export function parseFilter(file: string, text: string): FilterDef {
  const root = parseYamlTree(file, text);
  const diags: Diagnostic[] = [];
  const err: Report = (node, message) => {
    diags.push(node.source.diag(node.offset, message));
  };
  const rules = new RuleParser(err);

  let def: FilterDef | undefined;
  if (root.kind !== 'map') err(root, `a filter file must be a mapping, found ${describeNode(root)}`);
  else {
    const f = new Map<string, YNode>();
    const known = ['name', 'lines', 'rules'];
    for (const { key, value } of root.entries) {
      if (known.includes(key.text)) f.set(key.text, value);
      else err(key, `unknown key '${key.text}' in the filter; known keys: ${known.join(', ')}`);
    }
    for (const r of ['name', 'rules']) if (!f.has(r)) err(root, `the filter is missing required key '${r}'`);
    const name = rules.str(f.get('name'), 'name');
    const expected = path.basename(file).replace(/\.ya?ml$/, '');
    if (name !== undefined && name !== expected) err(f.get('name')!, `name '${name}' does not match the file name (expected '${expected}')`);
    let lines: 'sed' | 'read' = 'sed';
    const ln = f.get('lines');
    if (ln) {
      if (ln.kind === 'scalar' && (ln.value === 'sed' || ln.value === 'read')) lines = ln.value;
      else err(ln, "lines must be 'sed' or 'read'");
    }
    const list: FilterRule[] = [];
    const rn = f.get('rules');
    if (rn) {
      if (rn.kind !== 'seq') err(rn, `rules must be a list, found ${describeNode(rn)}`);
      else
        for (const item of rn.items) {
          const r = rules.rule(item, RULE_KINDS);
          if (r) list.push(r);
        }
    }
    if (name !== undefined) def = { name, lines, rules: list, at: root.source.pos(root.offset) };
  }
  if (diags.length > 0 || !def) throw new ValidationError(diags.length > 0 ? diags : [{ file, line: 1, col: 1, message: 'invalid filter' }]);
  return def;
}
