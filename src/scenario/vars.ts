/**
 * Expansions in scenario strings, a small and safe subset of bash's:
 *   $NAME, ${NAME}      a variable ($$ is a literal `$`; a `$` not followed by a name, `{` or
 *                       `(` stays literal, so grep patterns such as `return$` need no escaping)
 *   $(( EXPR ))         bash arithmetic (64-bit, wrapping); names may be written bare inside
 *   $(seq [FIRST [INCR]] LAST)
 *                       the numbers one per line, as the command substitution gives them
 * Nothing else runs: any other `$(...)` is a validation error.
 */
import { ArithmeticError, evaluate, expressionNames } from './expr.ts';

export interface VariableRef {
  name: string;
  /** Index in the text: of the `$`, or of the bare name inside `$(( ))`. */
  index: number;
  length: number;
}

export interface VariableSyntaxError {
  index: number;
  message: string;
}

type Segment =
  | { kind: 'text'; text: string }
  | { kind: 'var'; name: string; index: number; length: number }
  | { kind: 'arith'; inner: Segment[]; index: number; length: number }
  | { kind: 'seq'; inner: Segment[]; index: number; length: number };

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;

/** Index of the `)` closing a `(` whose inside starts at `from`, or -1. */
function closingParen(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

function parse(text: string, base: number, errors: VariableSyntaxError[]): Segment[] {
  const out: Segment[] = [];
  let literal = '';
  const flush = (): void => {
    if (literal !== '') out.push({ kind: 'text', text: literal });
    literal = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '$') {
      literal += c;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      literal += '$';
      i++;
      continue;
    }
    if (next === '{') {
      const close = text.indexOf('}', i + 2);
      if (close < 0) {
        errors.push({ index: base + i, message: "unterminated '${': missing '}'" });
        literal += text.slice(i);
        break;
      }
      const name = text.slice(i + 2, close);
      NAME.lastIndex = 0;
      const m = NAME.exec(name);
      if (!m || m[0].length !== name.length) errors.push({ index: base + i, message: `bad variable reference '\${${name}}'` });
      flush();
      out.push({ kind: 'var', name, index: base + i, length: close + 1 - i });
      i = close;
      continue;
    }
    if (next === '(') {
      flush();
      if (text[i + 2] === '(') {
        const close = closingParen(text, i + 3);
        if (close < 0 || text[close + 1] !== ')') {
          errors.push({ index: base + i, message: "unterminated '$((': missing '))'" });
          break;
        }
        // The inside runs from i+3 to the `)` that pairs with the second `(`.
        const inside = text.slice(i + 3, close);
        const inner = parse(inside, base + i + 3, errors);
        checkArithmetic(inside, inner, base + i + 3, errors);
        out.push({ kind: 'arith', inner, index: base + i, length: close + 2 - i });
        i = close + 1;
        continue;
      }
      const close = closingParen(text, i + 2);
      if (close < 0) {
        errors.push({ index: base + i, message: "unterminated '$(': missing ')'" });
        break;
      }
      const inside = text.slice(i + 2, close);
      if (!/^\s*seq(\s|$)/.test(inside)) {
        errors.push({ index: base + i, message: `command substitution '$(${inside})' is not supported; only $(( arithmetic )) and $(seq FIRST LAST) are` });
      } else {
        const words = inside.trim().split(/\s+/);
        if (words.length < 2 || words.length > 4) errors.push({ index: base + i, message: '$(seq) takes LAST, FIRST LAST or FIRST INCREMENT LAST' });
      }
      out.push({ kind: 'seq', inner: parse(inside, base + i + 2, errors), index: base + i, length: close + 1 - i });
      i = close;
      continue;
    }
    NAME.lastIndex = i + 1;
    const m = NAME.exec(text);
    if (m) {
      flush();
      out.push({ kind: 'var', name: m[0], index: base + i, length: 1 + m[0].length });
      i += m[0].length;
      continue;
    }
    literal += '$';
  }
  flush();
  return out;
}

/** Syntax-checks the inside of `$(( ))` with every `$ref` standing for a number. */
function checkArithmetic(inside: string, inner: Segment[], base: number, errors: VariableSyntaxError[]): void {
  try {
    expressionNames(placeholderText(inside, inner, base));
  } catch (err) {
    if (err instanceof ArithmeticError) errors.push({ index: base + err.index, message: `bad arithmetic: ${err.message}` });
    else throw err;
  }
}

/** The text with each expansion replaced by a `1` padded to the same length (indexes stay valid). */
function placeholderText(inside: string, inner: Segment[], base: number): string {
  let out = '';
  let at = 0;
  for (const s of inner) {
    if (s.kind === 'text') {
      out += s.text;
      at += s.text.length;
      continue;
    }
    const start = s.index - base;
    out += inside.slice(at, start);
    out += '1'.padEnd(s.length, ' ');
    at = start + s.length;
  }
  return out + inside.slice(at);
}

function collectRefs(segments: Segment[], base: number, text: string, refs: VariableRef[]): void {
  for (const s of segments) {
    if (s.kind === 'var') refs.push({ name: s.name, index: s.index, length: s.length });
    else if (s.kind === 'arith') {
      collectRefs(s.inner, s.index + 3, text, refs);
      const inside = text.slice(s.index - base + 3, s.index - base + s.length - 2);
      try {
        for (const n of expressionNames(placeholderText(inside, s.inner, s.index + 3))) refs.push({ name: n.name, index: s.index + 3 + n.index, length: n.name.length });
      } catch {
        // reported by checkArithmetic
      }
    } else if (s.kind === 'seq') collectRefs(s.inner, s.index + 2, text, refs);
  }
}

export function scanVariables(text: string): { refs: VariableRef[]; errors: VariableSyntaxError[] } {
  const errors: VariableSyntaxError[] = [];
  const segments = parse(text, 0, errors);
  const refs: VariableRef[] = [];
  collectRefs(segments, 0, text, refs);
  refs.sort((a, b) => a.index - b.index);
  return { refs, errors };
}

/** A variable could not be expanded at run time (unset, bad arithmetic, bad seq). */
export class ExpansionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpansionError';
  }
}

export type VariableLookup = (name: string) => string | undefined;

function expandSegments(segments: Segment[], lookup: VariableLookup): string {
  let out = '';
  for (const s of segments) {
    switch (s.kind) {
      case 'text':
        out += s.text;
        break;
      case 'var': {
        const v = lookup(s.name);
        if (v === undefined) throw new ExpansionError(`variable $${s.name} is not set`);
        out += v;
        break;
      }
      case 'arith':
        out += arithmetic(expandSegments(s.inner, lookup), lookup).toString();
        break;
      case 'seq':
        out += seq(expandSegments(s.inner, lookup));
        break;
    }
  }
  return out;
}

/** Evaluates arithmetic text; bare names are looked up (unset names are errors, not 0). */
export function arithmetic(text: string, lookup: VariableLookup): bigint {
  try {
    return evaluate(text, (name) => {
      const v = lookup(name);
      if (v === undefined) throw new ExpansionError(`variable ${name} is not set`);
      return v;
    });
  } catch (err) {
    if (err instanceof ArithmeticError) throw new ExpansionError(`${text.trim()}: ${err.message}`);
    throw err;
  }
}

function seq(command: string): string {
  const words = command.trim().split(/\s+/).slice(1);
  const nums = words.map((w) => {
    if (!/^-?\d+$/.test(w)) throw new ExpansionError(`seq: invalid floating point argument: '${w}'`);
    return BigInt(w);
  });
  const [first, incr, last] = nums.length === 1 ? [1n, 1n, nums[0]!] : nums.length === 2 ? [nums[0]!, 1n, nums[1]!] : [nums[0]!, nums[1]!, nums[2]!];
  if (incr === 0n) throw new ExpansionError("seq: invalid Zero increment value: '0'");
  const out: string[] = [];
  for (let v = first; incr > 0n ? v <= last : v >= last; v += incr) {
    out.push(v.toString());
    if (out.length > 1_000_000) throw new ExpansionError('seq: too many numbers');
  }
  return out.join('\n');
}

/** Parsed templates by text: scenario strings are expanded again and again in loops. */
const parsed = new Map<string, { segments: Segment[]; error?: string }>();

/** Expands a string; throws ExpansionError for unset variables or bad arithmetic. */
export function expandText(text: string, lookup: VariableLookup): string {
  if (!text.includes('$')) return text;
  let entry = parsed.get(text);
  if (!entry) {
    const errors: VariableSyntaxError[] = [];
    entry = { segments: parse(text, 0, errors), ...(errors.length > 0 ? { error: errors[0]!.message } : {}) };
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(text, entry);
  }
  if (entry.error !== undefined) throw new ExpansionError(entry.error);
  return expandSegments(entry.segments, lookup);
}

/** Expands with a fixed set of variables (filters, tests); every name must be in `vars`. */
export function expandVariables(text: string, vars: Readonly<Record<string, string>>): string {
  return expandText(text, (name) => (Object.hasOwn(vars, name) ? vars[name] : undefined));
}
