/**
 * Applies filters to tool output with the semantics of the sed/bash pipelines in QEMU's
 * common.filter: sed works line by line and keeps an unterminated last line unterminated;
 * bash's `while read -r line` trims blanks and never sees an unterminated last line.
 */
import { expandVariables } from '../scenario/vars.ts';
import type { ChangeRangeRule, FilterDef, FilterRule, FilterVars, FormattingSpec, ImgCreateRule, LineRule, Pattern } from './types.ts';

type Compiled = (text: string) => string;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** null when the pattern is a literal that expanded to nothing (sed would reject `s###`). */
function compilePattern(p: Pattern, vars: FilterVars, flags: string): RegExp | null {
  const values = vars as unknown as Record<string, string>;
  if ('text' in p) {
    const literal = expandVariables(p.text, values);
    return literal === '' ? null : new RegExp(escapeRegExp(literal), flags);
  }
  const source = p.regex.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => escapeRegExp(values[name] ?? ''));
  return new RegExp(source, flags);
}

interface CompiledLineRule {
  apply(line: string, state: Map<CompiledLineRule, boolean>): { line: string; deleted: boolean; emit?: string };
}

function compileLineRule(rule: LineRule, vars: FilterVars): CompiledLineRule | null {
  switch (rule.kind) {
    case 'replace': {
      const re = compilePattern(rule.pattern, vars, rule.global ? 'g' : '');
      if (!re) return null;
      const literal = 'text' in rule.pattern;
      const replacement = rule.with;
      return {
        apply: (line) => ({ line: literal ? line.replace(re, () => replacement) : line.replace(re, replacement), deleted: false }),
      };
    }
    case 'delete': {
      const re = compilePattern(rule.pattern, vars, '');
      if (!re) return null;
      return { apply: (line) => ({ line, deleted: re.test(line) }) };
    }
    case 'change_range':
      return compileChangeRange(rule, vars);
  }
}

function compileChangeRange(rule: ChangeRangeRule, vars: FilterVars): CompiledLineRule | null {
  const from = compilePattern(rule.from, vars, '');
  const to = compilePattern(rule.to, vars, '');
  if (!from || !to) return null;
  const self: CompiledLineRule = {
    apply(line, state) {
      if (!state.get(self)) {
        if (!from.test(line)) return { line, deleted: false };
        // A regex end address is only tried from the next line on.
        state.set(self, true);
        return { line, deleted: true };
      }
      if (to.test(line)) {
        state.set(self, false);
        return { line, deleted: true, emit: `${rule.text}\n` };
      }
      return { line, deleted: true };
    },
  };
  return self;
}

/** One sed invocation with several -e expressions. */
function compileSed(rules: readonly LineRule[], vars: FilterVars): Compiled {
  const compiled = rules.map((r) => compileLineRule(r, vars)).filter((r): r is CompiledLineRule => r !== null);
  return (text) => {
    if (text === '') return '';
    const state = new Map<CompiledLineRule, boolean>();
    const terminated = text.endsWith('\n');
    const lines = (terminated ? text.slice(0, -1) : text).split('\n');
    let out = '';
    lines.forEach((original, i) => {
      let line = original;
      for (const rule of compiled) {
        const r = rule.apply(line, state);
        if (r.emit) out += r.emit;
        if (r.deleted) return;
        line = r.line;
      }
      out += line;
      if (terminated || i < lines.length - 1) out += '\n';
    });
    return out;
  };
}

/** bash `while read -r line; do echo "$line"; done`: trimmed lines, unterminated tail lost. */
export function readLines(text: string): string[] {
  const parts = text.split('\n');
  parts.pop(); // '' after the last newline, or an unterminated line `read` reports as EOF
  return parts.map((l) => l.replace(/^[ \t]+|[ \t]+$/g, ''));
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * _do_filter_img_create for one line, replaying its pipeline: the option text is echoed, its
 * newlines turned into NULs, split before every ` name=`, grepped against the whitelist, passed
 * through the filename filters, ranked, sorted in the C locale and joined with blanks.
 */
function formattingLine(line: string, spec: FormattingSpec, filenames: Compiled, vars: FilterVars): string {
  const at = line.indexOf(spec.split);
  // The part of the split marker that starts the option text (", fmt=" → "fmt=").
  const optionsStart = spec.split.replace(/^,\s*/, '');
  const filenamePart = at < 0 ? line : line.slice(0, at);
  const options = at < 0 ? optionsStart : `${optionsStart}${line.slice(at + spec.split.length)}\n`;

  const filename = filenames(`${filenamePart}\n`).replace(/\n+$/, '');

  const splitter = new RegExp(` (${spec.option})=`, 'g');
  const pieces = `${options}\n`.replace(/\n/g, '\0').replace(splitter, '\n$1=').split('\n');
  const unless = spec.keepContainingUnlessImgoptsMatch;
  const keepContaining = spec.keepContaining !== undefined && !(unless !== undefined && new RegExp(unless).test(vars.IMGOPTS));
  const kept = pieces.filter((p) => spec.keepPrefixes.some((pre) => p.startsWith(pre)) || (keepContaining && p.includes(spec.keepContaining!)));
  const ranked = kept
    .map((p) => filenames(`${p}\n`).replace(/\n$/, ''))
    .map((p) => {
      for (const [name, rank] of Object.entries(spec.rank)) if (p.startsWith(name)) return `${rank}-${p}`;
      return p;
    })
    .sort(byteCompare)
    .map((p) => p.replace(/^[0-9]-/, ''));
  const joined = ranked
    .map((p) => `${p}\n`)
    .join('')
    .replace(/[\n\0]/g, (c) => (c === '\n' ? ' ' : '\n'));
  const optionsOut = joined
    .split('\n')
    .map((l) => (/^ *$/.test(l) ? '' : l.replace(/ *$/, '')))
    .join('\n')
    .replace(/\n+$/, '');

  if (optionsOut !== '') return `${filename}, ${optionsOut}\n`;
  if (filename !== '') return `${filename}\n`;
  return '';
}

function compileImgCreate(rule: ImgCreateRule, vars: FilterVars): Compiled {
  const filenames = compileSed(rule.filenames, vars);
  const match = new RegExp(rule.formatting.match);
  return (text) =>
    readLines(text)
      .map((line) => (match.test(line) ? formattingLine(line, rule.formatting, filenames, vars) : filenames(`${line}\n`)))
      .join('');
}

export function compileFilter(def: FilterDef, vars: FilterVars): Compiled {
  const stages: Compiled[] = [];
  if (def.lines === 'read') stages.push((text) => readLines(text).map((l) => `${l}\n`).join(''));
  let pending: LineRule[] = [];
  const flush = (): void => {
    if (pending.length > 0) stages.push(compileSed(pending, vars));
    pending = [];
  };
  for (const rule of def.rules as FilterRule[]) {
    if (rule.kind === 'img_create') {
      flush();
      stages.push(compileImgCreate(rule, vars));
    } else {
      pending.push(rule);
    }
  }
  flush();
  return (text) => stages.reduce((t, stage) => stage(t), text);
}

/** The filters of one run, bound to its variables. */
export class FilterChain {
  private readonly defs: ReadonlyMap<string, FilterDef>;
  private readonly vars: FilterVars;
  private readonly cache = new Map<string, Compiled>();
  constructor(defs: ReadonlyMap<string, FilterDef>, vars: FilterVars) {
    this.defs = defs;
    this.vars = vars;
  }

  private get(name: string): Compiled {
    let c = this.cache.get(name);
    if (!c) {
      const def = this.defs.get(name);
      if (!def) throw new Error(`unknown filter '${name}'`);
      c = compileFilter(def, this.vars);
      this.cache.set(name, c);
    }
    return c;
  }

  /** `text | _filter_a | _filter_b ...` */
  apply(names: readonly string[], text: string): string {
    let out = text;
    for (const name of names) out = this.get(name)(out);
    return out;
  }
}
