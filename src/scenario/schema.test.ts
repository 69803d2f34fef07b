/**
 * Keeps schema/scenario.schema.json and the validator in agreement: the file must be what
 * spec.ts generates, every step kind and key of the validator must appear in it, and a small
 * JSON Schema checker (the keywords the schema uses) must accept and reject what load.ts does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { parseScenario } from './load.ts';
import { renderSchema } from './schema.ts';
import type { JsonSchema } from './schema.ts';
import { EXCHANGE_FIELDS, SCENARIO_FIELDS, STEP_SPECS } from './spec.ts';
import type { StepSpec } from './spec.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const filterNames = fs
  .readdirSync(path.join(ROOT, 'filters'))
  .filter((n) => n.endsWith('.yaml'))
  .map((n) => n.slice(0, -5))
  .sort();
const schemaText = fs.readFileSync(path.join(ROOT, 'schema/scenario.schema.json'), 'utf8');
const schema = JSON.parse(schemaText) as JsonSchema;
const defs = schema.$defs as Record<string, JsonSchema>;

/** Just enough of draft 2020-12 for this schema: type, enum, properties, required, … */
function valid(value: unknown, s: JsonSchema): boolean {
  if (s.$ref) return valid(value, defs[(s.$ref as string).replace('#/$defs/', '')]!);
  if (s.anyOf && !(s.anyOf as JsonSchema[]).some((x) => valid(value, x))) return false;
  if (s.oneOf && (s.oneOf as JsonSchema[]).filter((x) => valid(value, x)).length !== 1) return false;
  if (s.enum && !(s.enum as unknown[]).includes(value)) return false;
  if (s.type) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;
    if (!types.some((t) => t === actual || (t === 'number' && actual === 'integer'))) return false;
  }
  if (typeof value === 'number' && s.exclusiveMinimum !== undefined && !(value > (s.exclusiveMinimum as number))) return false;
  if (typeof value === 'number' && s.minimum !== undefined && !(value >= (s.minimum as number))) return false;
  if (typeof value === 'string' && s.pattern !== undefined && !new RegExp(s.pattern as string).test(value)) return false;
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < (s.minItems as number)) return false;
    if (s.maxItems !== undefined && value.length > (s.maxItems as number)) return false;
    if (s.items && !value.every((v) => valid(v, s.items as JsonSchema))) return false;
  } else if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (s.minProperties !== undefined && keys.length < (s.minProperties as number)) return false;
    if (s.maxProperties !== undefined && keys.length > (s.maxProperties as number)) return false;
    if (s.propertyNames && !keys.every((k) => valid(k, s.propertyNames as JsonSchema))) return false;
    if (s.required && !(s.required as string[]).every((k) => k in obj)) return false;
    const props = (s.properties ?? {}) as Record<string, JsonSchema>;
    const patterns = Object.entries((s.patternProperties ?? {}) as Record<string, JsonSchema>);
    for (const k of keys) {
      if (props[k]) {
        if (!valid(obj[k], props[k])) return false;
        continue;
      }
      const p = patterns.find(([re]) => new RegExp(re).test(k));
      if (p) {
        if (!valid(obj[k], p[1])) return false;
        continue;
      }
      if (s.additionalProperties === false) return false;
      if (typeof s.additionalProperties === 'object' && !valid(obj[k], s.additionalProperties as JsonSchema)) return false;
    }
  }
  return true;
}

describe('schema/scenario.schema.json', () => {
  it('is exactly what spec.ts generates (regenerate: node src/scenario/schema.ts --write)', () => {
    expect(schemaText).toBe(renderSchema(filterNames));
  });

  it('names every step kind and every key the validator knows, and no others', () => {
    const kinds = Object.keys(defs).filter((k) => k.startsWith('step_')).map((k) => k.slice(5));
    expect(kinds.sort()).toEqual(Object.keys(STEP_SPECS).sort());
    for (const [kind, spec] of Object.entries(STEP_SPECS) as [string, StepSpec][]) {
      if (kind === 'exit_status' || kind === 'set') continue;
      const def = defs[`step_${kind}`]!;
      const props = ((def.anyOf ? (def.anyOf as JsonSchema[])[0] : def) as JsonSchema).properties as Record<string, JsonSchema>;
      if (spec.shorthand && spec.fields[spec.shorthand]!.type === 'condition') {
        // `if: COND` / `while: COND`: the other keys are siblings of the kind.
        expect(Object.keys(props).sort()).toEqual(Object.keys(spec.fields).map((k) => (k === spec.shorthand ? kind : k)).sort());
        continue;
      }
      const head = props[kind]!;
      const full = (head.anyOf ? (head.anyOf as JsonSchema[])[0] : head) as JsonSchema;
      expect(Object.keys(full.properties as object).sort()).toEqual(Object.keys(spec.fields).sort());
    }
    expect(Object.keys(schema.properties as object).sort()).toEqual(Object.keys(SCENARIO_FIELDS).sort());
    expect(Object.keys(defs.exchange!.properties as object).sort()).toEqual(Object.keys(EXCHANGE_FIELDS).sort());
  });

  it('accepts every scenario in scenarios/', () => {
    for (const name of fs.readdirSync(path.join(ROOT, 'scenarios')).filter((n) => n.endsWith('.yaml'))) {
      const text = fs.readFileSync(path.join(ROOT, 'scenarios', name), 'utf8');
      expect(text.startsWith('# yaml-language-server: $schema=../schema/scenario.schema.json')).toBe(true);
      expect(valid(load(text), schema)).toBe(true);
    }
  });

  const HEAD = 'id: 900\ntitle: t\nsteps:\n';
  const agree: [string, string, boolean][] = [
    ['bare echo', `${HEAD}  - echo\n`, true],
    ['shorthand with siblings', `${HEAD}  - qemu-io: [-c, x]\n    stderr: merged\n    filters: [qemu_io]\n`, true],
    ['long form', `${HEAD}  - make_test_img: { size: 1M, opts: "a=b" }\n`, true],
    ['exit_status', `${HEAD}  - exit_status: { 0: a, default: b }\n`, true],
    ['qmp', `${HEAD}  - qmp: { launch: [-blockdev, x], exchange: [{ send: x, until: y }] }\n`, true],
    ['unknown kind', `${HEAD}  - echoo: x\n`, false],
    ['unknown key', `${HEAD}  - make_test_img: { size: 1M, optz: x }\n`, false],
    ['unknown sibling', `${HEAD}  - echo: x\n    newlines: false\n`, false],
    ['wrong type', `${HEAD}  - echo: x\n    newline: "no"\n`, false],
    ['missing field', `${HEAD}  - truncate: { file: x }\n`, false],
    ['unknown filter', `${HEAD}  - qemu-io: [x]\n    filters: [nope]\n`, false],
    ['bad stream mode', `${HEAD}  - qemu-io: [x]\n    stderr: both\n`, false],
    ['bad exit status key', `${HEAD}  - exit_status: { one: a }\n`, false],
    ['missing title', `id: 900\nsteps:\n  - echo\n`, false],
    ['bare step that needs a value', `${HEAD}  - make_test_img\n`, false],
    ['set', `${HEAD}  - set: { a: 1, B_2: "x $$a" }\n`, true],
    ['set with a bad name', `${HEAD}  - set: { 2a: 1 }\n`, false],
    ['if with arithmetic', `${HEAD}  - set: { i: 0 }\n  - if: "$i < 3"\n    then: [echo]\n    else: [{ echo: x }]\n`, true],
    ['if with equal', `${HEAD}  - if: { equal: [a, b] }\n    then: [echo]\n`, true],
    ['if with three texts', `${HEAD}  - if: { equal: [a, b, c] }\n    then: [echo]\n`, false],
    ['if without then', `${HEAD}  - if: "1"\n`, false],
    ['foreach', `${HEAD}  - foreach: [1k, 2k]\n    var: s\n    steps: [{ echo: $s }]\n`, true],
    ['foreach over words', `${HEAD}  - foreach: "$(seq 0 3)"\n    var: s\n    steps: [{ echo: $s }]\n`, true],
    ['foreach without var', `${HEAD}  - foreach: [1k]\n    steps: [echo]\n`, false],
    ['macro and call', `id: 900\ntitle: t\nmacros:\n  m:\n    params: { a: 1, b: null }\n    steps: [{ echo: $a$b }]\nsteps:\n  - call: m\n    args: { b: 2 }\n`, true],
    ['inline filters', `${HEAD}  - qemu-img: [info, x]\n    filters: [testdir, { grep: { regex: '^a', invert: true, after: 1 } }, { tr: { from: "a", to: "b" } }]\n`, true],
    ['inline filter of an unknown kind', `${HEAD}  - qemu-img: [info, x]\n    filters: [{ awk: { x: 1 } }]\n`, false],
    ['poke and peek', `${HEAD}  - poke_file: { file: $TEST_IMG, offset: 0x30, data: '\\x00\\x01' }\n  - peek_file_be: { file: $TEST_IMG, offset: 48, size: 8, into: v }\n`, true],
    ['stdout discard and stdin', `${HEAD}  - qemu-io: [$TEST_IMG]\n    stdin: "length\\n"\n    stdout: discard\n`, true],
    ['bad stdout mode', `${HEAD}  - qemu-io: [$TEST_IMG]\n    stdout: hide\n`, false],
  ];
  it.each(agree)('agrees with the validator: %s', (_name, text, ok) => {
    let loaderOk = true;
    try {
      parseScenario('scenarios/900.yaml', text, { filterNames: new Set(filterNames) });
    } catch {
      loaderOk = false;
    }
    expect(loaderOk).toBe(ok);
    expect(valid(load(text), schema)).toBe(ok);
  });
});
