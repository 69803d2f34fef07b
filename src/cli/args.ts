/** Shared argv handling for the runner's subcommands: node:util parseArgs with one-line errors. */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCommandLine<T extends Options>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs' messages are clear but mention internals ("To specify a positional argument...").
    const message = err instanceof Error ? err.message.split('. To specify')[0]!.replace(/\.$/, '') : String(err);
    throw new UsageError(message);
  }
}

/** `-g a,b -g c` → [a, b, c] */
export function splitList(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/** Job counts beyond this are typos (and would not be exact numbers past 2^53). */
const MAX_POSITIVE = 1024;

export function positiveInt(value: string | undefined, name: string, dflt: number): number {
  if (value === undefined) return dflt;
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`${name} needs a positive whole number, got '${value}'`);
  if (Number(value) > MAX_POSITIVE) throw new UsageError(`${name} needs a whole number from 1 to ${MAX_POSITIVE}, got '${value}'`);
  return Number(value);
}
