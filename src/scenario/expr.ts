/**
 * Bash arithmetic (`$(( ))`, `(( ))`) as the iotests use it: 64-bit signed integers that wrap,
 * C operators and precedence, decimal/0x/leading-0 octal/base#n literals, and variables written
 * bare (`offset + 8`) whose values are themselves arithmetic. Assignments are refused: a scenario
 * changes variables with `set`, so an expression has no side effects.
 */

export class ArithmeticError extends Error {
  /** Index in the expression text where the problem is, when known. */
  readonly index: number;
  constructor(message: string, index = 0) {
    super(message);
    this.name = 'ArithmeticError';
    this.index = index;
  }
}

type Token =
  | { kind: 'num'; value: bigint; index: number }
  | { kind: 'name'; name: string; index: number }
  | { kind: 'op'; op: string; index: number }
  | { kind: 'end'; index: number };

const OPERATORS = ['<<=', '>>=', '**', '<<', '>>', '<=', '>=', '==', '!=', '&&', '||', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '++', '--', '+', '-', '*', '/', '%', '<', '>', '&', '|', '^', '!', '~', '?', ':', '(', ')', '=', ','];

const wrap = (v: bigint): bigint => BigInt.asIntN(64, v);

/** A bash integer constant: 0x1f, 017 (octal), 2#101, 42. */
export function parseIntegerLiteral(text: string): bigint | null {
  let m = /^0[xX]([0-9a-fA-F]+)$/.exec(text);
  if (m) return wrap(BigInt(`0x${m[1]}`));
  m = /^(\d+)#([0-9a-zA-Z@_]+)$/.exec(text);
  if (m) {
    const base = Number(m[1]);
    if (base < 2 || base > 64) return null;
    let v = 0n;
    for (const ch of m[2]!) {
      let d: number;
      if (/[0-9]/.test(ch)) d = ch.charCodeAt(0) - 48;
      else if (/[a-z]/.test(ch)) d = ch.charCodeAt(0) - 97 + 10;
      else if (/[A-Z]/.test(ch)) d = base <= 36 ? ch.charCodeAt(0) - 65 + 10 : ch.charCodeAt(0) - 65 + 36;
      else if (ch === '@') d = 62;
      else d = 63;
      if (d >= base) return null;
      v = v * BigInt(base) + BigInt(d);
    }
    return wrap(v);
  }
  if (/^0[0-7]*$/.test(text)) return wrap(BigInt(`0o${text.slice(1) || '0'}`));
  if (/^[1-9]\d*$/.test(text)) return wrap(BigInt(text));
  return null;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = /^[0-9][0-9a-zA-Z@_#]*/.exec(text.slice(i))!;
      const value = parseIntegerLiteral(m[0]);
      if (value === null) throw new ArithmeticError(`value too great for base (error token is "${m[0]}")`, i);
      tokens.push({ kind: 'num', value, index: i });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!;
      tokens.push({ kind: 'name', name: m[0], index: i });
      i += m[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (!op) throw new ArithmeticError(`syntax error: invalid arithmetic operator (error token is "${text.slice(i)}")`, i);
    tokens.push({ kind: 'op', op, index: i });
    i += op.length;
  }
  tokens.push({ kind: 'end', index: text.length });
  return tokens;
}

/** Binary operators by precedence, lowest first (bash follows C). */
const BINARY_LEVELS: readonly (readonly string[])[] = [['||'], ['&&'], ['|'], ['^'], ['&'], ['==', '!='], ['<', '>', '<=', '>='], ['<<', '>>'], ['+', '-'], ['*', '/', '%']];
const ASSIGNMENTS = new Set(['=', '+=', '-=', '*=', '/=', '%=', '<<=', '>>=', '&=', '|=', '^=', '++', '--']);

type Node =
  | { kind: 'num'; value: bigint }
  | { kind: 'name'; name: string; index: number }
  | { kind: 'unary'; op: string; arg: Node }
  | { kind: 'binary'; op: string; left: Node; right: Node; index: number }
  | { kind: 'cond'; test: Node; then: Node; else: Node };

class Parser {
  private pos = 0;
  private readonly tokens: Token[];
  private readonly text: string;
  constructor(text: string) {
    this.text = text;
    this.tokens = tokenize(text);
  }

  parse(): Node {
    const node = this.comma();
    const t = this.peek();
    if (t.kind !== 'end') throw this.syntax(t);
    return node;
  }

  private peek(): Token {
    return this.tokens[this.pos]!;
  }

  private isOp(op: string): boolean {
    const t = this.peek();
    return t.kind === 'op' && t.op === op;
  }

  private syntax(t: Token): ArithmeticError {
    if (t.kind === 'op' && ASSIGNMENTS.has(t.op)) return new ArithmeticError(`assignment '${t.op}' is not allowed in an expression; use a set step`, t.index);
    const rest = this.text.slice(t.index);
    return new ArithmeticError(t.kind === 'end' ? 'syntax error: operand expected' : `syntax error in expression (error token is "${rest}")`, t.index);
  }

  private comma(): Node {
    let node = this.conditional();
    while (this.isOp(',')) {
      this.pos++;
      node = this.conditional();
    }
    return node;
  }

  private conditional(): Node {
    const test = this.binary(0);
    if (!this.isOp('?')) return test;
    this.pos++;
    const then = this.comma();
    if (!this.isOp(':')) throw new ArithmeticError("syntax error: ':' expected for conditional expression", this.peek().index);
    this.pos++;
    return { kind: 'cond', test, then, else: this.conditional() };
  }

  private binary(level: number): Node {
    if (level >= BINARY_LEVELS.length) return this.power();
    let left = this.binary(level + 1);
    for (;;) {
      const t = this.peek();
      if (t.kind !== 'op' || !BINARY_LEVELS[level]!.includes(t.op)) return left;
      this.pos++;
      left = { kind: 'binary', op: t.op, left, right: this.binary(level + 1), index: t.index };
    }
  }

  private power(): Node {
    const base = this.unary();
    if (!this.isOp('**')) return base;
    const t = this.peek();
    this.pos++;
    return { kind: 'binary', op: '**', left: base, right: this.power(), index: t.index };
  }

  private unary(): Node {
    const t = this.peek();
    if (t.kind === 'op' && ['!', '~', '+', '-'].includes(t.op)) {
      this.pos++;
      return { kind: 'unary', op: t.op, arg: this.unary() };
    }
    return this.primary();
  }

  private primary(): Node {
    const t = this.peek();
    if (t.kind === 'num') {
      this.pos++;
      return { kind: 'num', value: t.value };
    }
    if (t.kind === 'name') {
      this.pos++;
      if (this.peek().kind === 'op' && ASSIGNMENTS.has((this.peek() as { op: string }).op)) throw this.syntax(this.peek());
      return { kind: 'name', name: t.name, index: t.index };
    }
    if (this.isOp('(')) {
      this.pos++;
      const inner = this.comma();
      if (!this.isOp(')')) throw new ArithmeticError("syntax error: missing ')'", this.peek().index);
      this.pos++;
      return inner;
    }
    throw this.syntax(t);
  }
}

/** Names of the variables an expression reads, with their index (validation). Throws on bad syntax. */
export function expressionNames(text: string): { name: string; index: number }[] {
  const out: { name: string; index: number }[] = [];
  const walk = (n: Node): void => {
    if (n.kind === 'name') out.push({ name: n.name, index: n.index });
    else if (n.kind === 'unary') walk(n.arg);
    else if (n.kind === 'binary') {
      walk(n.left);
      walk(n.right);
    } else if (n.kind === 'cond') {
      walk(n.test);
      walk(n.then);
      walk(n.else);
    }
  };
  walk(new Parser(text).parse());
  return out;
}

/** How a bare variable name gets its value (text, evaluated again as arithmetic). */
export type NameLookup = (name: string) => string;

const MAX_DEPTH = 32;

/** a ** b modulo 2^64 by squaring, so huge exponents cannot blow up. */
function power(a: bigint, b: bigint): bigint {
  let result = 1n;
  let base = BigInt.asUintN(64, a);
  let e = b;
  while (e > 0n) {
    if (e & 1n) result = BigInt.asUintN(64, result * base);
    base = BigInt.asUintN(64, base * base);
    e >>= 1n;
  }
  return wrap(result);
}

/** Parsed expressions by text (loops evaluate the same ones many times). */
const asts = new Map<string, Node>();

function parseCached(text: string): Node {
  let ast = asts.get(text);
  if (!ast) {
    ast = new Parser(text).parse();
    if (asts.size > 10_000) asts.clear();
    asts.set(text, ast);
  }
  return ast;
}

export function evaluate(text: string, lookup: NameLookup, depth = 0): bigint {
  if (depth > MAX_DEPTH) throw new ArithmeticError('expression recursion level exceeded');
  if (text.trim() === '') return 0n;
  const ast = parseCached(text);
  const ev = (n: Node): bigint => {
    switch (n.kind) {
      case 'num':
        return n.value;
      case 'name': {
        const value = lookup(n.name).trim();
        if (value === '') return 0n;
        const literal = parseIntegerLiteral(value.replace(/^[-+]/, ''));
        if (literal !== null) return wrap(value.startsWith('-') ? -literal : literal);
        return evaluate(value, lookup, depth + 1);
      }
      case 'unary': {
        const v = ev(n.arg);
        if (n.op === '!') return v === 0n ? 1n : 0n;
        if (n.op === '~') return wrap(~v);
        return n.op === '-' ? wrap(-v) : v;
      }
      case 'cond':
        return ev(n.test) !== 0n ? ev(n.then) : ev(n.else);
      case 'binary': {
        if (n.op === '&&') return ev(n.left) !== 0n && ev(n.right) !== 0n ? 1n : 0n;
        if (n.op === '||') return ev(n.left) !== 0n || ev(n.right) !== 0n ? 1n : 0n;
        const a = ev(n.left);
        const b = ev(n.right);
        switch (n.op) {
          case '+':
            return wrap(a + b);
          case '-':
            return wrap(a - b);
          case '*':
            return wrap(a * b);
          case '/':
          case '%':
            if (b === 0n) throw new ArithmeticError('division by 0', n.index);
            return wrap(n.op === '/' ? a / b : a % b);
          case '**':
            if (b < 0n) throw new ArithmeticError('exponent less than 0', n.index);
            return power(a, b);
          case '<<':
            return wrap(a << (b & 63n));
          case '>>':
            return wrap(a >> (b & 63n));
          case '&':
            return a & b;
          case '|':
            return a | b;
          case '^':
            return a ^ b;
          case '<':
            return a < b ? 1n : 0n;
          case '>':
            return a > b ? 1n : 0n;
          case '<=':
            return a <= b ? 1n : 0n;
          case '>=':
            return a >= b ? 1n : 0n;
          case '==':
            return a === b ? 1n : 0n;
          case '!=':
            return a !== b ? 1n : 0n;
        }
        throw new ArithmeticError(`unknown operator ${n.op}`, n.index);
      }
    }
  };
  return ev(ast);
}
