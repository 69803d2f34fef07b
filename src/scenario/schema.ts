/**
 * JSON Schema (draft 2020-12) of the scenario format, generated from spec.ts so the published
 * schema/scenario.schema.json cannot drift from the validator (a test compares the two).
 * Regenerate with: node src/scenario/schema.ts --write
 * The schema serves editors (completion, early checks); load.ts stays the authority, e.g. for
 * unknown $VARIABLES and paths outside TEST_DIR.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXCHANGE_FIELDS, MACRO_FIELDS, REQUIRES_FIELDS, SCENARIO_FIELDS, STEP_SPECS } from './spec.ts';
import type { FieldSpec, FieldType, StepSpec } from './spec.ts';

export type JsonSchema = { [key: string]: unknown };

const TEXT: JsonSchema = { type: ['string', 'number'] };

function fieldSchema(type: FieldType, filterNames: readonly string[]): JsonSchema {
  switch (type) {
    case 'string':
    case 'path':
      return { ...TEXT };
    case 'boolean':
      return { type: 'boolean' };
    case 'number':
      return { type: 'number', exclusiveMinimum: 0 };
    case 'integer':
    case 'bytes':
      return { ...TEXT };
    case 'name':
      return { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' };
    case 'string-list':
      return { type: 'array', items: { ...TEXT } };
    case 'words':
      return { anyOf: [{ ...TEXT }, { type: 'array', items: { ...TEXT } }] };
    case 'filter-list':
      return { type: 'array', items: { anyOf: [{ enum: [...filterNames] }, { $ref: '#/$defs/inline_rule' }] } };
    case 'stream-mode':
      return { enum: ['merged', 'direct'] };
    case 'stdout-mode':
      return { enum: ['show', 'discard'] };
    case 'exchange-list':
      return { type: 'array', minItems: 1, items: { $ref: '#/$defs/exchange' } };
    case 'status-cases':
      return { $ref: '#/$defs/status_cases' };
    case 'steps':
      return { type: 'array', minItems: 1, items: { $ref: '#/$defs/step' } };
    case 'condition':
      return { $ref: '#/$defs/condition' };
    case 'text-map':
      return { type: 'object', additionalProperties: { anyOf: [{ ...TEXT }, { type: 'null' }] } };
  }
}

const PATTERN_KEYS = { text: { ...TEXT }, regex: { ...TEXT } };

/** The rules a `filters:` list may hold inline (same syntax as in filters/*.yaml). */
function inlineRuleSchema(): JsonSchema {
  const rule = (kind: string, props: Record<string, JsonSchema>, req: string[] = []): JsonSchema => ({
    type: 'object',
    required: [kind],
    additionalProperties: false,
    properties: { [kind]: { type: 'object', additionalProperties: false, properties: props, ...(req.length > 0 ? { required: req } : {}) } },
  });
  return {
    oneOf: [
      rule('replace', { ...PATTERN_KEYS, with: { ...TEXT }, global: { type: 'boolean' } }, ['with']),
      rule('delete', PATTERN_KEYS),
      rule('grep', { ...PATTERN_KEYS, invert: { type: 'boolean' }, after: { type: 'integer', minimum: 0 } }),
      rule('tr', { from: { type: 'string' }, to: { type: 'string' } }, ['from', 'to']),
    ],
  };
}

function withDescription(spec: FieldSpec, filterNames: readonly string[]): JsonSchema {
  return { description: spec.description, ...fieldSchema(spec.type, filterNames) };
}

function properties(fields: Readonly<Record<string, FieldSpec>>, filterNames: readonly string[]): JsonSchema {
  return Object.fromEntries(Object.entries(fields).map(([name, spec]) => [name, withDescription(spec, filterNames)]));
}

function required(fields: Readonly<Record<string, FieldSpec>>): string[] {
  return Object.entries(fields)
    .filter(([, s]) => s.required)
    .map(([n]) => n);
}

function stepSchema(kind: string, spec: StepSpec, filterNames: readonly string[]): JsonSchema {
  if (kind === 'set') {
    return {
      type: 'object',
      description: spec.description,
      required: [kind],
      additionalProperties: false,
      properties: { [kind]: { type: 'object', minProperties: 1, propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }, additionalProperties: { ...TEXT } } },
    };
  }
  if (kind === 'exit_status') {
    return {
      type: 'object',
      description: spec.description,
      required: [kind],
      additionalProperties: false,
      properties: { [kind]: { $ref: '#/$defs/status_cases' } },
    };
  }
  const full: JsonSchema = {
    type: 'object',
    additionalProperties: false,
    properties: properties(spec.fields, filterNames),
    ...(required(spec.fields).length > 0 ? { required: required(spec.fields) } : {}),
  };
  const description = `${spec.description} (iotests: ${spec.bash})`;
  // A condition given as a mapping ({equal: [..]}) is the condition itself, never the long form.
  const shortType = spec.shorthand ? spec.fields[spec.shorthand]!.type : undefined;
  const heads: JsonSchema[] = shortType === 'condition' ? [] : [full];
  if (shortType) heads.push(fieldSchema(shortType, filterNames));
  if (spec.bare) heads.push({ type: 'null' });
  const siblings = Object.fromEntries(
    Object.entries(spec.fields)
      .filter(([name]) => name !== spec.shorthand)
      .map(([name, f]) => [name, withDescription(f, filterNames)]),
  );
  const requiredSiblings = required(spec.fields).filter((n) => n !== spec.shorthand);
  if (shortType && shortType !== 'condition' && requiredSiblings.length > 0) {
    // Long form `kind: {…}` alone, or `kind: VALUE` with its required keys beside it.
    return {
      description,
      anyOf: [
        { type: 'object', required: [kind], additionalProperties: false, properties: { [kind]: full } },
        { type: 'object', required: [kind, ...requiredSiblings], additionalProperties: false, properties: { [kind]: fieldSchema(shortType, filterNames), ...siblings } },
      ],
    };
  }
  return {
    type: 'object',
    description,
    required: [kind, ...(shortType === 'condition' ? requiredSiblings : [])],
    additionalProperties: false,
    properties: { [kind]: heads.length === 1 ? heads[0] : { anyOf: heads }, ...(spec.shorthand ? siblings : {}) },
  };
}

export function buildScenarioSchema(filterNames: readonly string[]): JsonSchema {
  const kinds = Object.entries(STEP_SPECS) as [string, StepSpec][];
  const bare = kinds.filter(([, s]) => s.bare).map(([k]) => k);
  const top = properties(SCENARIO_FIELDS, filterNames);
  top.id = { description: SCENARIO_FIELDS.id.description, type: ['string', 'integer'] };
  top.groups = { description: SCENARIO_FIELDS.groups.description, type: 'array', items: { ...TEXT } };
  top.requires = {
    description: SCENARIO_FIELDS.requires.description,
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(REQUIRES_FIELDS.map((n) => [n, { type: 'array', items: { type: 'string' } }])),
  };
  top.macros = {
    description: SCENARIO_FIELDS.macros.description,
    type: 'object',
    propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
    additionalProperties: { $ref: '#/$defs/macro' },
  };
  top.steps = { description: SCENARIO_FIELDS.steps.description, type: 'array', minItems: 1, items: { $ref: '#/$defs/step' } };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'qtest scenario',
    description: 'One QEMU-iotests-style test as data. Generated from src/scenario/spec.ts; the validator (src/scenario/load.ts) is authoritative.',
    type: 'object',
    additionalProperties: false,
    required: required(SCENARIO_FIELDS),
    properties: top,
    $defs: {
      step: { oneOf: [{ enum: bare }, ...kinds.map(([k]) => ({ $ref: `#/$defs/step_${k}` }))] },
      ...Object.fromEntries(kinds.map(([k, s]) => [`step_${k}`, stepSchema(k, s, filterNames)])),
      exchange: { type: 'object', additionalProperties: false, required: required(EXCHANGE_FIELDS), properties: properties(EXCHANGE_FIELDS, filterNames) },
      macro: { type: 'object', additionalProperties: false, required: required(MACRO_FIELDS), properties: properties(MACRO_FIELDS, filterNames) },
      condition: {
        anyOf: [
          { ...TEXT },
          { type: 'object', additionalProperties: false, minProperties: 1, maxProperties: 1, properties: { equal: { type: 'array', minItems: 2, maxItems: 2, items: { ...TEXT } }, not_equal: { type: 'array', minItems: 2, maxItems: 2, items: { ...TEXT } } } },
        ],
      },
      inline_rule: inlineRuleSchema(),
      status_cases: {
        type: 'object',
        minProperties: 1,
        additionalProperties: false,
        patternProperties: { '^(default|[0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$': { ...TEXT } },
      },
    },
  };
}

export function renderSchema(filterNames: readonly string[]): string {
  return `${JSON.stringify(buildScenarioSchema(filterNames), null, 2)}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const filterNames = fs
    .readdirSync(path.join(root, 'filters'))
    .filter((n) => n.endsWith('.yaml'))
    .map((n) => n.slice(0, -5))
    .sort();
  const target = path.join(root, 'schema', 'scenario.schema.json');
  const text = renderSchema(filterNames);
  if (process.argv.includes('--write')) fs.writeFileSync(target, text);
  else process.stdout.write(text);
}
