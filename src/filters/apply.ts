/**
 * Applies filters to tool output with the semantics of the sed/bash pipelines in QEMU's
 * common.filter: sed works line by line and keeps an unterminated last line unterminated;
 * bash's `while read -r line` trims blanks and never sees an unterminated last line.
 */
import { expandVariables } from '../scenario/vars.ts';
import type { ChangeRangeRule, FilterDef, FilterRule, FilterVars, FormattingSpec, GrepRule, ImgCreateRule, ImgInfoBlocksRule, LineRule, Pattern, TrRule } from './types.ts';

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

/** `$&`, `$1`..`$99` and `$$` in a replacement, as JavaScript's String.replace reads them. */
function expandReplacement(replacement: string, m: RegExpExecArray): string {
  return replacement.replace(/\$(\$|&|\d{1,2})/g, (whole, what: string) => {
    if (what === '$') return '$';
    if (what === '&') return m[0];
    const n = Number(what);
    return n > 0 && n < m.length ? (m[n] ?? '') : whole;
  });
}

/**
 * sed's `s/re/with/[g]` on one line. With `g`, an empty match right where the previous match
 * ended is skipped, as GNU sed does (JavaScript's replace would substitute there too).
 */
export function sedSubstitute(line: string, re: RegExp, literal: boolean, replacement: string, global: boolean): string {
  let out = '';
  let pos = 0;
  let prevEnd = -1;
  while (pos <= line.length) {
    re.lastIndex = pos;
    const m = re.exec(line);
    if (!m) break;
    const start = m.index;
    const end = start + m[0].length;
    if (start === end && start === prevEnd) {
      if (start >= line.length) break;
      out += line.slice(pos, start + 1);
      pos = start + 1;
      continue;
    }
    out += line.slice(pos, start) + (literal ? replacement : expandReplacement(replacement, m));
    prevEnd = end;
    if (!global) {
      pos = end;
      break;
    }
    if (end === start) {
      if (start >= line.length) {
        pos = start;
        break;
      }
      out += line[start];
      pos = start + 1;
    } else pos = end;
  }
  return out + line.slice(pos);
}

interface CompiledLineRule {
  apply(line: string, state: Map<CompiledLineRule, boolean>): { line: string; deleted: boolean; emit?: string };
}

function compileLineRule(rule: LineRule, vars: FilterVars): CompiledLineRule | null {
  switch (rule.kind) {
    case 'replace': {
      const re = compilePattern(rule.pattern, vars, 'g');
      if (!re) return null;
      const literal = 'text' in rule.pattern;
      const replacement = rule.with;
      return { apply: (line) => ({ line: sedSubstitute(line, re, literal, replacement, rule.global), deleted: false }) };
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

/** Lines of a text, each with its newline; an unterminated last line is kept as is. */
function splitLines(text: string): string[] {
  if (text === '') return [];
  const parts = text.split('\n');
  const last = parts.pop()!;
  const lines = parts.map((p) => `${p}\n`);
  if (last !== '') lines.push(last);
  return lines;
}

/** grep [-v] [-A N]: unterminated last lines get their newline, groups are split by `--`. */
function compileGrep(rule: GrepRule, vars: FilterVars): Compiled {
  const re = compilePattern(rule.pattern, vars, '');
  return (text) => {
    const lines = splitLines(text).map((l) => l.replace(/\n$/, ''));
    let out = '';
    let lastPrinted = -1;
    let contextLeft = 0;
    lines.forEach((line, i) => {
      const hit = (re ? re.test(line) : true) !== rule.invert;
      if (hit) {
        if (rule.after > 0 && lastPrinted >= 0 && lastPrinted < i - 1) out += '--\n';
        out += `${line}\n`;
        lastPrinted = i;
        contextLeft = rule.after;
      } else if (contextLeft > 0) {
        out += `${line}\n`;
        lastPrinted = i;
        contextLeft--;
      }
    });
    return out;
  };
}

function compileTr(rule: TrRule): Compiled {
  const map = new Map<string, string>();
  [...rule.from].forEach((c, i) => map.set(c, [...rule.to][i]!));
  return (text) => [...text].map((c) => map.get(c) ?? c).join('');
}

/**
 * _img_info's loop (`while IFS='' read -r line`: lines kept verbatim, an unterminated last
 * line lost): "Format specific information:" starts a block dropped up to and excluding its
 * blank line (which is printed); a JSON `"format-specific": {` starts one dropped up to the
 * line closing it at the same indentation.
 */
function compileImgInfoBlocks(rule: ImgInfoBlocksRule): Compiled {
  const jsonStart = /^ *"format-specific": \{/;
  return (text) => {
    const parts = text.split('\n');
    parts.pop();
    let discard = 0;
    let jsonEnd: RegExp | null = null;
    let out = '';
    for (const line of parts) {
      if (discard === 0) {
        if (!rule.keepFormatSpecific && line === 'Format specific information:') discard = 1;
        else if (line.includes("Child node '/")) discard = 1;
        else if (!rule.keepFormatSpecific && jsonStart.test(line)) {
          discard = 2;
          jsonEnd = new RegExp(`^${/^ */.exec(line)![0]}\\},? *$`);
        } else if (/^ *"children": \[/.test(line)) {
          discard = 2;
          jsonEnd = new RegExp(`^${/^ */.exec(line)![0]}\\],? *$`);
        }
      }
      if (discard === 0) out += `${line}\n`;
      else if (discard === 1 && line === '') {
        out += '\n';
        discard = 0;
      } else if (discard === 2 && jsonEnd!.test(line)) discard = 0;
    }
    return out;
  };
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
    switch (rule.kind) {
      case 'img_create':
        flush();
        stages.push(compileImgCreate(rule, vars));
        break;
      case 'grep':
        flush();
        stages.push(compileGrep(rule, vars));
        break;
      case 'tr':
        flush();
        stages.push(compileTr(rule));
        break;
      case 'img_info_blocks':
        flush();
        stages.push(compileImgInfoBlocks(rule));
        break;
      default:
        pending.push(rule);
    }
  }
  flush();
  return (text) => stages.reduce((t, stage) => stage(t), text);
}

/** A filter in a pipeline: a name from filters/*.yaml or a scenario's inline rule. */
export type FilterRef = string | FilterDef;

/** The filters of one run, bound to its variables. */
export class FilterChain {
  private readonly defs: ReadonlyMap<string, FilterDef>;
  private readonly vars: FilterVars;
  private readonly cache = new Map<FilterRef, Compiled>();
  constructor(defs: ReadonlyMap<string, FilterDef>, vars: FilterVars) {
    this.defs = defs;
    this.vars = vars;
  }

  private get(ref: FilterRef): Compiled {
    let c = this.cache.get(ref);
    if (!c) {
      const def = typeof ref === 'string' ? this.defs.get(ref) : ref;
      if (!def) throw new Error(`unknown filter '${String(ref)}'`);
      c = compileFilter(def, this.vars);
      this.cache.set(ref, c);
    }
    return c;
  }

  /** The same filters with some variables changed (a function's `local IMGFMT=raw`). */
  with(overrides: Partial<FilterVars>): FilterChain {
    return new FilterChain(this.defs, { ...this.vars, ...overrides });
  }

  /** `text | _filter_a | _filter_b ...` */
  apply(refs: readonly FilterRef[], text: string): string {
    let out = text;
    for (const ref of refs) out = this.get(ref)(out);
    return out;
  }
}
