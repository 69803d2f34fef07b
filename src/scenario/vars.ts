/**
 * `$NAME` / `${NAME}` references in scenario strings. `$$` is a literal `$`; a `$` not followed
 * by a name or `{` stays literal, so grep patterns such as `return$` need no escaping.
 */

export interface VariableRef {
  name: string;
  /** Index of the `$` in the text. */
  index: number;
  length: number;
}

export interface VariableSyntaxError {
  index: number;
  message: string;
}

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;

export function scanVariables(text: string): { refs: VariableRef[]; errors: VariableSyntaxError[] } {
  const refs: VariableRef[] = [];
  const errors: VariableSyntaxError[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '$') continue;
    const next = text[i + 1];
    if (next === '$') {
      i++;
      continue;
    }
    if (next === '{') {
      const close = text.indexOf('}', i + 2);
      if (close < 0) {
        errors.push({ index: i, message: "unterminated '${': missing '}'" });
        break;
      }
      const name = text.slice(i + 2, close);
      NAME.lastIndex = 0;
      const m = NAME.exec(name);
      if (!m || m[0].length !== name.length) {
        errors.push({ index: i, message: `bad variable reference '\${${name}}'` });
      } else {
        refs.push({ name, index: i, length: close + 1 - i });
      }
      i = close;
      continue;
    }
    NAME.lastIndex = i + 1;
    const m = NAME.exec(text);
    if (m) {
      refs.push({ name: m[0], index: i, length: 1 + m[0].length });
      i += m[0].length;
    }
  }
  return { refs, errors };
}

/** Expands references; every name must be in `vars` (the loader has checked that). */
export function expandVariables(text: string, vars: Readonly<Record<string, string>>): string {
  if (!text.includes('$')) return text;
  const { refs } = scanVariables(text);
  let out = '';
  let last = 0;
  for (const ref of refs) {
    out += unescapeDollars(text.slice(last, ref.index));
    const value = vars[ref.name];
    if (value === undefined) throw new Error(`unknown variable $${ref.name}`);
    out += value;
    last = ref.index + ref.length;
  }
  return out + unescapeDollars(text.slice(last));
}

function unescapeDollars(text: string): string {
  return text.replace(/\$\$/g, '$');
}
