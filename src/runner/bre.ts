/**
 * GNU grep basic regular expressions (what `_send_qemu_cmd`'s `grep -q PATTERN` understands)
 * translated to JavaScript RegExp. Matching is by line, so no multiline flags are needed.
 */

const CLASSES: Record<string, string> = {
  alpha: 'A-Za-z',
  digit: '0-9',
  alnum: 'A-Za-z0-9',
  upper: 'A-Z',
  lower: 'a-z',
  space: ' \\t\\n\\r\\f\\v',
  blank: ' \\t',
  punct: '!-\\/:-@\\[-`{-~',
  xdigit: '0-9A-Fa-f',
  print: ' -~',
  graph: '!-~',
  cntrl: '\\x00-\\x1f\\x7f',
};

export class BreSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BreSyntaxError';
  }
}

function bracket(src: string, start: number): { js: string; end: number } {
  let i = start + 1;
  let js = '[';
  if (src[i] === '^') {
    js += '^';
    i++;
  }
  if (src[i] === ']') {
    js += '\\]';
    i++;
  }
  while (i < src.length && src[i] !== ']') {
    if (src.startsWith('[:', i)) {
      const close = src.indexOf(':]', i + 2);
      const name = close > 0 ? src.slice(i + 2, close) : '';
      const cls = CLASSES[name];
      if (!cls) throw new BreSyntaxError(`unknown character class '[:${name}:]'`);
      js += cls;
      i = close + 2;
      continue;
    }
    const c = src[i]!;
    js += c === '\\' || c === '[' ? `\\${c}` : c;
    i++;
  }
  if (i >= src.length) throw new BreSyntaxError("unmatched '['");
  return { js: `${js}]`, end: i + 1 };
}

export function breToRegExp(src: string): RegExp {
  let js = '';
  // Where `*` is literal and `^` is an anchor: at the start, after \( and after \|.
  let atStart = true;
  for (let i = 0; i < src.length; ) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new BreSyntaxError('trailing backslash');
      i += 2;
      switch (n) {
        case '(':
          js += '(';
          atStart = true;
          continue;
        case ')':
          js += ')';
          break;
        case '|':
          js += '|';
          atStart = true;
          continue;
        case '{': {
          const close = src.indexOf('\\}', i);
          if (close < 0) throw new BreSyntaxError("unmatched '\\{'");
          js += `{${src.slice(i, close)}}`;
          i = close + 2;
          break;
        }
        case '+':
        case '?':
          js += n;
          break;
        case '<':
          js += '\\b(?=\\w)';
          break;
        case '>':
          js += '\\b(?<=\\w)';
          break;
        case 'w':
        case 'W':
        case 's':
        case 'S':
        case 'b':
        case 'B':
          js += `\\${n}`;
          break;
        default:
          if (/[1-9]/.test(n)) js += `\\${n}`;
          else js += n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      }
      atStart = false;
      continue;
    }
    if (c === '[') {
      const b = bracket(src, i);
      js += b.js;
      i = b.end;
      atStart = false;
      continue;
    }
    if (c === '^') {
      js += atStart ? '^' : '\\^';
      i++;
      continue;
    }
    if (c === '$') {
      const rest = src.slice(i + 1);
      js += rest === '' || rest.startsWith('\\)') || rest.startsWith('\\|') ? '$' : '\\$';
      i++;
      atStart = false;
      continue;
    }
    if (c === '*') {
      js += atStart ? '\\*' : '*';
      i++;
      atStart = false;
      continue;
    }
    if ('(){}|+?/'.includes(c)) {
      js += `\\${c}`;
      i++;
      atStart = false;
      continue;
    }
    js += c;
    i++;
    atStart = false;
  }
  return new RegExp(js);
}
