/**
 * Reads filters/*.yaml into FilterDefs, with the same file:line:col validation as scenarios.
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

const RULE_KINDS = ['replace', 'delete', 'change_range', 'img_create'] as const;

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
  const err = (node: YNode, message: string): void => {
    diags.push(node.source.diag(node.offset, message));
  };

  const asMap = (node: YNode, what: string): YMap | undefined => {
    if (node.kind === 'map') return node;
    err(node, `${what} must be a mapping, found ${describeNode(node)}`);
    return undefined;
  };
  const keys = (m: YMap, known: readonly string[], required: readonly string[], owner: string): Map<string, YNode> => {
    const out = new Map<string, YNode>();
    for (const { key, value } of m.entries) {
      if (known.includes(key.text)) out.set(key.text, value);
      else err(key, `unknown key '${key.text}' in ${owner}; known keys: ${known.join(', ')}`);
    }
    for (const r of required) if (!out.has(r)) err(m, `${owner} is missing required key '${r}'`);
    return out;
  };
  const str = (node: YNode | undefined, what: string): string | undefined => {
    if (!node) return undefined;
    if (node.kind === 'scalar' && (typeof node.value === 'string' || typeof node.value === 'number')) return node.text;
    err(node, `${what} must be a string, found ${describeNode(node)}`);
    return undefined;
  };
  const bool = (node: YNode | undefined, what: string, dflt: boolean): boolean => {
    if (!node) return dflt;
    if (node.kind === 'scalar' && typeof node.value === 'boolean') return node.value;
    err(node, `${what} must be true or false, found ${describeNode(node)}`);
    return dflt;
  };
  const checkTextVars = (node: YNode, value: string): void => {
    const { refs, errors } = scanVariables(value);
    for (const e of errors) err(node, e.message);
    for (const r of refs) if (!(FILTER_VARIABLES as readonly string[]).includes(r.name)) err(node, `unknown variable $${r.name}; filters know ${FILTER_VARIABLES.map((v) => '$' + v).join(', ')}`);
  };
  const checkRegex = (node: YNode, value: string): void => {
    for (const m of value.matchAll(/\$\{([^}]*)\}/g)) {
      if (!(FILTER_VARIABLES as readonly string[]).includes(m[1]!)) err(node, `unknown variable \${${m[1]}}; filters know ${FILTER_VARIABLES.map((v) => '${' + v + '}').join(', ')}`);
    }
    try {
      new RegExp(value.replace(/\$\{[^}]*\}/g, 'x'));
    } catch (e) {
      err(node, `invalid regular expression: ${(e as Error).message}`);
    }
  };
  const pattern = (m: Map<string, YNode>, owner: string, textKey = 'text', regexKey = 'regex'): Pattern | undefined => {
    const t = m.get(textKey);
    const r = m.get(regexKey);
    if (t && r) {
      err(r, `${owner} takes either '${textKey}' or '${regexKey}', not both`);
      return undefined;
    }
    if (t) {
      const s = str(t, textKey);
      if (s === undefined) return undefined;
      checkTextVars(t, s);
      return { text: s };
    }
    if (r) {
      const s = str(r, regexKey);
      if (s === undefined) return undefined;
      checkRegex(r, s);
      return { regex: s };
    }
    return undefined;
  };
  const regexOnly = (node: YNode | undefined, what: string): string | undefined => {
    const s = str(node, what);
    if (s !== undefined && node) checkRegex(node, s);
    return s;
  };

  const lineRule = (node: YNode, allowed: readonly string[]): LineRule | FilterRule | undefined => {
    const m = asMap(node, 'a rule');
    if (!m) return undefined;
    if (m.entries.length !== 1) {
      err(m, `a rule has exactly one kind (${allowed.join(', ')})`);
      return undefined;
    }
    const { key, value } = m.entries[0]!;
    if (!allowed.includes(key.text)) {
      err(key, `unknown rule kind '${key.text}'; known kinds: ${allowed.join(', ')}`);
      return undefined;
    }
    const body = asMap(value, `rule '${key.text}'`);
    if (!body) return undefined;
    switch (key.text) {
      case 'replace': {
        const f = keys(body, ['text', 'regex', 'with', 'global'], ['with'], "rule 'replace'");
        const p = pattern(f, "rule 'replace'");
        if (!p && !f.has('text') && !f.has('regex')) err(body, "rule 'replace' needs 'text' or 'regex'");
        const w = str(f.get('with'), 'with');
        if (!p || w === undefined) return undefined;
        return { kind: 'replace', pattern: p, with: w, global: bool(f.get('global'), 'global', false) };
      }
      case 'delete': {
        const f = keys(body, ['text', 'regex'], [], "rule 'delete'");
        const p = pattern(f, "rule 'delete'");
        if (!p) {
          if (!f.has('text') && !f.has('regex')) err(body, "rule 'delete' needs 'text' or 'regex'");
          return undefined;
        }
        return { kind: 'delete', pattern: p };
      }
      case 'change_range': {
        const f = keys(body, ['from', 'to', 'text'], ['from', 'to', 'text'], "rule 'change_range'");
        const from = regexOnly(f.get('from'), 'from');
        const to = regexOnly(f.get('to'), 'to');
        const text = str(f.get('text'), 'text');
        if (from === undefined || to === undefined || text === undefined) return undefined;
        return { kind: 'change_range', from: { regex: from }, to: { regex: to }, text };
      }
      case 'img_create': {
        const f = keys(body, ['filenames', 'formatting'], ['filenames', 'formatting'], "rule 'img_create'");
        const filenames: LineRule[] = [];
        const fn = f.get('filenames');
        if (fn) {
          if (fn.kind !== 'seq') err(fn, `filenames must be a list of rules, found ${describeNode(fn)}`);
          else for (const item of fn.items) {
            const r = lineRule(item, ['replace', 'delete']);
            if (r) filenames.push(r as LineRule);
          }
        }
        const fm = f.get('formatting');
        const formatting = fm ? formattingSpec(fm) : undefined;
        if (!formatting) return undefined;
        return { kind: 'img_create', filenames, formatting };
      }
    }
    return undefined;
  };

  const formattingSpec = (node: YNode): FormattingSpec | undefined => {
    const m = asMap(node, 'formatting');
    if (!m) return undefined;
    const known = ['match', 'split', 'option', 'keep_prefixes', 'keep_containing', 'keep_containing_unless_imgopts_match', 'rank'];
    const f = keys(m, known, ['match', 'split', 'option', 'keep_prefixes', 'rank'], 'formatting');
    const match = regexOnly(f.get('match'), 'match');
    const split = str(f.get('split'), 'split');
    const option = regexOnly(f.get('option'), 'option');
    const prefixesNode = f.get('keep_prefixes');
    const keepPrefixes: string[] = [];
    if (prefixesNode) {
      if (prefixesNode.kind !== 'seq') err(prefixesNode, 'keep_prefixes must be a list');
      else for (const item of prefixesNode.items) {
        const s = str(item, 'a prefix');
        if (s !== undefined) keepPrefixes.push(s);
      }
    }
    const rank: Record<string, number> = {};
    const rankNode = f.get('rank');
    if (rankNode) {
      const rm = asMap(rankNode, 'rank');
      if (rm) for (const { key, value } of rm.entries) {
        if (value.kind === 'scalar' && typeof value.value === 'number' && Number.isInteger(value.value) && value.value >= 0 && value.value <= 9) rank[key.text] = value.value;
        else err(value, `rank of '${key.text}' must be a digit 0-9, found ${describeNode(value)}`);
      }
    }
    const keepContaining = str(f.get('keep_containing'), 'keep_containing');
    const unless = regexOnly(f.get('keep_containing_unless_imgopts_match'), 'keep_containing_unless_imgopts_match');
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
  };

  const top = asMap(root, 'a filter file');
  let def: FilterDef | undefined;
  if (top) {
    const f = keys(top, ['name', 'lines', 'rules'], ['name', 'rules'], 'the filter');
    const name = str(f.get('name'), 'name');
    const expected = path.basename(file).replace(/\.ya?ml$/, '');
    if (name !== undefined && name !== expected) err(f.get('name')!, `name '${name}' does not match the file name (expected '${expected}')`);
    let lines: 'sed' | 'read' = 'sed';
    const ln = f.get('lines');
    if (ln) {
      if (ln.kind === 'scalar' && (ln.value === 'sed' || ln.value === 'read')) lines = ln.value;
      else err(ln, "lines must be 'sed' or 'read'");
    }
    const rules: FilterRule[] = [];
    const rn = f.get('rules');
    if (rn) {
      if (rn.kind !== 'seq') err(rn, `rules must be a list, found ${describeNode(rn)}`);
      else for (const item of rn.items) {
        const r = lineRule(item, RULE_KINDS);
        if (r) rules.push(r);
      }
    }
    if (name !== undefined) def = { name, lines, rules, at: top.source.pos(top.offset) };
  }
  if (diags.length > 0 || !def) throw new ValidationError(diags.length > 0 ? diags : [{ file, line: 1, col: 1, message: 'invalid filter' }]);
  return def;
}
