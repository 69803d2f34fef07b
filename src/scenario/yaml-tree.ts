/**
 * YAML source → a small tree whose every node knows where it came from, so validation can name
 * `file:line:col` for any problem. Built from js-yaml's event stream (parseEvents), which gives
 * source offsets; js-yaml's own load() would lose them.
 */
import { parseEvents, getScalarValue, CORE_SCHEMA, EVENT_ID, SCALAR_STYLE, YAMLException } from 'js-yaml';
import type { Event, ScalarEvent } from 'js-yaml';
import { LineIndex, ValidationError } from './location.ts';
import type { Diagnostic, SourcePos } from './location.ts';

export type ScalarValue = string | number | boolean | null;

interface NodeBase {
  /** Offset of the node's first character (a quoted scalar's opening quote). */
  offset: number;
  source: YamlSource;
}

export interface YScalar extends NodeBase {
  kind: 'scalar';
  value: ScalarValue;
  /** The decoded text, whatever type the value resolved to. */
  text: string;
  quoted: boolean;
  /** Absent for placeholders built after an error. */
  event?: ScalarEvent;
}

export interface YMapEntry {
  key: YScalar;
  value: YNode;
}

export interface YMap extends NodeBase {
  kind: 'map';
  entries: YMapEntry[];
}

export interface YSeq extends NodeBase {
  kind: 'seq';
  items: YNode[];
}

export type YNode = YScalar | YMap | YSeq;

export class YamlSource {
  readonly file: string;
  readonly text: string;
  readonly lines: LineIndex;
  constructor(file: string, text: string) {
    this.file = file;
    this.text = text;
    this.lines = new LineIndex(file, text);
  }

  pos(offset: number): SourcePos {
    return this.lines.pos(offset);
  }

  diag(offset: number, message: string): Diagnostic {
    return { ...this.pos(offset), message };
  }
}

export function describeNode(node: YNode): string {
  if (node.kind === 'map') return 'a mapping';
  if (node.kind === 'seq') return 'a list';
  if (node.value === null) return 'null';
  if (typeof node.value === 'string') return 'a string';
  if (typeof node.value === 'boolean') return 'a boolean';
  return 'a number';
}

/**
 * Parses one YAML document. Anchors, aliases, tags and multiple documents are refused: a
 * scenario is plain data, and each of those would make positions or meaning less obvious.
 */
export function parseYamlTree(file: string, text: string): YNode {
  const source = new YamlSource(file, text);
  let events: Event[];
  try {
    events = parseEvents(text, { filename: file });
  } catch (err) {
    if (err instanceof YAMLException) {
      const mark = err.mark;
      const reason = err.reason || 'invalid YAML';
      if (mark) throw new ValidationError([{ file, line: mark.line + 1, col: mark.column + 1, message: `YAML syntax error: ${reason}` }]);
      throw new ValidationError([{ file, line: 1, col: 1, message: `YAML syntax error: ${reason}` }]);
    }
    throw err;
  }

  const problems: Diagnostic[] = [];
  let i = 0;
  const documents: (YNode | null)[] = [];

  function build(): YNode {
    const ev = events[i++]!;
    if (ev.type === EVENT_ID.ALIAS) {
      problems.push(source.diag(ev.anchorStart > 0 ? ev.anchorStart - 1 : 0, 'YAML aliases are not supported in scenarios'));
      return { kind: 'scalar', value: null, text: '', quoted: false, offset: Math.max(0, ev.anchorStart - 1), source };
    }
    const anchorStart = 'anchorStart' in ev ? ev.anchorStart : -1;
    if (anchorStart >= 0) problems.push(source.diag(Math.max(0, anchorStart - 1), 'YAML anchors are not supported in scenarios'));
    const tagStart = 'tagStart' in ev ? ev.tagStart : -1;
    if (tagStart >= 0) problems.push(source.diag(tagStart, 'YAML tags are not supported in scenarios'));

    if (ev.type === EVENT_ID.SCALAR) {
      const text = getScalarValue(text_, ev);
      const quoted = ev.style === SCALAR_STYLE.SINGLE_QUOTED || ev.style === SCALAR_STYLE.DOUBLE_QUOTED;
      const value: ScalarValue = ev.style === SCALAR_STYLE.PLAIN ? resolvePlain(text) : text;
      return { kind: 'scalar', value, text, quoted, offset: quoted ? ev.valueStart - 1 : ev.valueStart, source, event: ev };
    }
    if (ev.type === EVENT_ID.SEQUENCE) {
      const node: YSeq = { kind: 'seq', items: [], offset: ev.start, source };
      while (events[i]!.type !== EVENT_ID.POP) node.items.push(build());
      i++;
      return node;
    }
    if (ev.type === EVENT_ID.MAPPING) {
      const node: YMap = { kind: 'map', entries: [], offset: ev.start, source };
      const seen = new Map<string, YScalar>();
      while (events[i]!.type !== EVENT_ID.POP) {
        const key = build();
        const value = build();
        if (key.kind !== 'scalar') {
          problems.push(source.diag(key.offset, 'mapping keys must be plain names'));
          continue;
        }
        const previous = seen.get(key.text);
        if (previous) {
          const p = source.pos(previous.offset);
          problems.push(source.diag(key.offset, `duplicate key '${key.text}' (first at line ${p.line})`));
          continue;
        }
        seen.set(key.text, key);
        node.entries.push({ key, value });
      }
      i++;
      return node;
    }
    throw new Error(`unexpected YAML event ${ev.type}`);
  }
  const text_ = text;

  while (i < events.length) {
    const ev = events[i++]!;
    if (ev.type !== EVENT_ID.DOCUMENT) continue;
    if (events[i]!.type === EVENT_ID.POP) {
      documents.push(null);
      i++;
      continue;
    }
    documents.push(build());
    i++; // the document's POP
  }

  if (documents.length > 1) problems.push({ file, line: 1, col: 1, message: 'a scenario file holds exactly one YAML document' });
  const root = documents[0];
  if (!root) problems.push({ file, line: 1, col: 1, message: 'the file is empty' });
  if (problems.length > 0) throw new ValidationError(problems);
  return root!;
}

function resolvePlain(text: string): ScalarValue {
  const resolved = CORE_SCHEMA.resolveImplicitScalarTag(text).value;
  if (resolved === null || typeof resolved === 'string' || typeof resolved === 'boolean' || typeof resolved === 'number') return resolved;
  return text;
}

/**
 * Offset in the source of the character at `index` of a scalar's decoded text, for errors that
 * point inside a string (an unknown `$VARIABLE`). Literal blocks map line by line; other styles
 * align decoded characters with the source, which is exact unless escapes or folding intervene.
 */
export function innerOffset(node: YScalar, index: number): number {
  const ev = node.event;
  if (!ev) return node.offset;
  const src = node.source.text;
  if (ev.style === SCALAR_STYLE.LITERAL_BLOCK && ev.indent > 0) {
    const before = node.text.slice(0, index);
    const lineNo = before.split('\n').length - 1;
    const col = index - (before.lastIndexOf('\n') + 1);
    let offset = ev.valueStart;
    for (let l = 0; l < lineNo; l++) {
      const nl = src.indexOf('\n', offset);
      if (nl < 0 || nl >= ev.valueEnd) return node.offset;
      offset = nl + 1;
    }
    // valueStart may sit at the first line's indentation or after it; normalise to line start.
    const lineStart = src.lastIndexOf('\n', offset - 1) + 1;
    return lineStart + ev.indent + col;
  }
  let s = ev.valueStart;
  for (let d = 0; d < index && s < ev.valueEnd; d++) {
    const want = node.text[d];
    while (s < ev.valueEnd && src[s] !== want) s++;
    s++;
  }
  while (s < ev.valueEnd && src[s] !== node.text[index]) s++;
  return Math.min(s, Math.max(ev.valueStart, ev.valueEnd - 1));
}
