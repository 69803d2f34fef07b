/**
 * QEMU's JSON reader (qobject/json-lexer.c, json-streamer.c, json-parser.c) as the block layer
 * uses it for `json:{...}` filenames: single-quoted strings are accepted, errors are worded as
 * QEMU words them ("JSON parse error, expecting value", "Expecting a JSON value", ...).
 */
import { OptionsError } from './errors.ts';
import { QDict, type QValue } from './qdict.ts';

type TokenType = 'lcurly' | 'rcurly' | 'lsquare' | 'rsquare' | 'colon' | 'comma' | 'integer' | 'float' | 'string' | 'keyword' | 'error';

interface Token {
  type: TokenType;
  text: string;
}

const WHITESPACE = new Set([' ', '\t', '\r', '\n']);
const STRUCTURAL: Record<string, TokenType> = {
  '{': 'lcurly',
  '}': 'rcurly',
  '[': 'lsquare',
  ']': 'rsquare',
  ':': 'colon',
  ',': 'comma',
};

/** Tokenize up to and including the first error token. */
function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (WHITESPACE.has(c)) {
      i++;
      continue;
    }
    const structural = STRUCTURAL[c];
    if (structural) {
      tokens.push({ type: structural, text: c });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let closed = false;
      while (j < text.length) {
        const d = text[j]!;
        if (d === '\\') {
          if (j + 1 >= text.length) break;
          j += 2;
          continue;
        }
        if (d === c) {
          closed = true;
          j++;
          break;
        }
        if (d.charCodeAt(0) < 0x20) {
          // Control characters end the token as an error that includes them.
          tokens.push({ type: 'error', text: text.slice(i, j + 1) });
          return tokens;
        }
        j++;
      }
      if (!closed) {
        tokens.push({ type: 'error', text: text.slice(i, j) });
        return tokens;
      }
      tokens.push({ type: 'string', text: text.slice(i, j) });
      i = j;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
      if (!m) {
        tokens.push({ type: 'error', text: text.slice(i, i + 2) });
        return tokens;
      }
      tokens.push({ type: m[2] || m[3] ? 'float' : 'integer', text: m[0] });
      i += m[0].length;
      continue;
    }
    if (c >= 'a' && c <= 'z') {
      let j = i;
      while (j < text.length && text[j]! >= 'a' && text[j]! <= 'z') j++;
      tokens.push({ type: 'keyword', text: text.slice(i, j) });
      i = j;
      continue;
    }
    tokens.push({ type: 'error', text: c });
    return tokens;
  }
  return tokens;
}

class ParseFailure extends Error {}

/** json-parser.c: one message's tokens to a value; the first error wins. */
class Parser {
  private pos = 0;
  private readonly tokens: Token[];
  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private pop(): Token | undefined {
    return this.tokens[this.pos++];
  }

  private fail(message: string): never {
    throw new ParseFailure(`JSON parse error, ${message}`);
  }

  parseValue(): QValue {
    const token = this.peek();
    if (!token) this.fail('premature EOI');
    switch (token.type) {
      case 'lcurly':
        return this.parseObject();
      case 'lsquare':
        return this.parseArray();
      case 'integer':
      case 'float':
      case 'string':
        this.pop();
        return this.literal(token);
      case 'keyword':
        this.pop();
        if (token.text === 'true') return true;
        if (token.text === 'false') return false;
        if (token.text === 'null') return null;
        return this.fail(`invalid keyword '${token.text}'`);
      default:
        return this.fail('expecting value');
    }
  }

  private literal(token: Token): QValue {
    if (token.type === 'string') return this.parseString(token.text);
    if (token.type === 'integer') {
      const v = BigInt(token.text);
      // Out-of-range integers become doubles, as QEMU does.
      return Number(v);
    }
    return Number(token.text);
  }

  private parseString(text: string): string {
    const body = text.slice(1, -1);
    let out = '';
    for (let i = 0; i < body.length; i++) {
      const c = body[i]!;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = body[++i];
      switch (e) {
        case '"':
        case "'":
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const hex = body.slice(i + 1, i + 5);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid hex escape sequence in string');
          const code = parseInt(hex, 16);
          if (code === 0) this.fail('\\u0000 is not supported');
          out += String.fromCharCode(code);
          i += 4;
          break;
        }
        default:
          this.fail('invalid escape sequence in string');
      }
    }
    return out;
  }

  private parsePair(dict: QDict): void {
    const peek = this.peek();
    if (!peek) this.fail('premature EOI');
    const key = this.parseValue();
    if (typeof key !== 'string') this.fail('key is not a string in object');
    const colon = this.pop();
    if (!colon) this.fail('premature EOI');
    if (colon.type !== 'colon') this.fail('missing : in object pair');
    const value = this.parseValue();
    if (dict.has(key)) this.fail('duplicate key');
    dict.set(key, value);
  }

  private parseObject(): QDict {
    this.pop();
    const dict = new QDict();
    const peek = this.peek();
    if (!peek) this.fail('premature EOI');
    if (peek.type === 'rcurly') {
      this.pop();
      return dict;
    }
    this.parsePair(dict);
    let token = this.pop();
    if (!token) this.fail('premature EOI');
    while (token.type !== 'rcurly') {
      if (token.type !== 'comma') this.fail('expected separator in dict');
      this.parsePair(dict);
      token = this.pop();
      if (!token) this.fail('premature EOI');
    }
    return dict;
  }

  private parseArray(): QValue[] {
    this.pop();
    const list: QValue[] = [];
    const peek = this.peek();
    if (!peek) this.fail('premature EOI');
    if (peek.type === 'rsquare') {
      this.pop();
      return list;
    }
    list.push(this.parseValue());
    let token = this.pop();
    if (!token) this.fail('premature EOI');
    while (token.type !== 'rsquare') {
      if (token.type !== 'comma') this.fail('expected separator in list');
      list.push(this.parseValue());
      token = this.pop();
      if (!token) this.fail('premature EOI');
    }
    return list;
  }
}

type Message = { value: QValue } | { error: string };

/** json-streamer.c: split the token stream into messages at brace/bracket balance. */
function messages(tokens: Token[]): Message[] {
  const out: Message[] = [];
  let queue: Token[] = [];
  let braces = 0;
  let brackets = 0;
  const emit = (): void => {
    try {
      out.push({ value: new Parser(queue).parseValue() });
    } catch (err) {
      if (!(err instanceof ParseFailure)) throw err;
      out.push({ error: err.message });
    }
    queue = [];
    braces = 0;
    brackets = 0;
  };
  for (const t of tokens) {
    if (t.type === 'error') {
      out.push({ error: `JSON parse error, stray '${t.text}'` });
      queue = [];
      braces = 0;
      brackets = 0;
      continue;
    }
    if (t.type === 'lcurly') braces++;
    else if (t.type === 'rcurly') braces--;
    else if (t.type === 'lsquare') brackets++;
    else if (t.type === 'rsquare') brackets--;
    queue.push(t);
    if ((braces > 0 || brackets > 0) && braces >= 0 && brackets >= 0) continue;
    emit();
  }
  if (queue.length > 0) emit();
  return out;
}

/** qobject_from_json: exactly one JSON value, or an OptionsError with QEMU's message. */
export function parseQemuJson(text: string): QValue {
  const msgs = messages(lex(text));
  let result: QValue | undefined;
  for (const m of msgs) {
    if (result !== undefined) throw new OptionsError('Expecting at most one JSON value');
    if ('error' in m) throw new OptionsError(m.error);
    result = m.value;
  }
  if (result === undefined) throw new OptionsError('Expecting a JSON value');
  return result;
}
