import { describe, expect, it } from 'vitest';
import { Getopt } from './getopt.ts';

const longs = [
  { name: 'help', hasArg: false, val: 'h' },
  { name: 'output', hasArg: true, val: 256 },
  { name: 'object', hasArg: true, val: 258 },
  { name: 'image-opts', hasArg: false, val: 259 },
];

function run(argv: string[], spec = ':hf:qU', posix = false) {
  const errors: string[] = [];
  const g = new Getopt(argv, spec, longs, posix, (m) => errors.push(m));
  const seen: string[] = [];
  for (;;) {
    const r = g.next();
    if (r.kind === 'end') break;
    if (r.kind === 'option') seen.push(`${r.opt}${r.optarg !== undefined ? `=${r.optarg}` : ''}`);
    else {
      seen.push(`${r.kind}:${g.previousArg()}`);
      break;
    }
  }
  return { seen, operands: g.operands(), errors };
}

describe('glibc getopt_long replay (what qemu-img quotes in its errors)', () => {
  it('permutes operands behind options', () => {
    expect(run(['check', 'y.qcow2', '-f', 'qcow2'])).toEqual({ seen: ['f=qcow2'], operands: ['y.qcow2'], errors: [] });
    expect(run(['check', 'a', '--', '-f']).operands).toEqual(['a', '-f']);
  });
  it('quotes argv[optind-1] like glibc leaves it', () => {
    expect(run(['check', '-qx', 'y']).seen).toEqual(['q', 'unknown:-qx']);
    // In the middle of a cluster optind still points at it: the previous element is quoted.
    expect(run(['check', '-xq', 'y']).seen).toEqual(['unknown:check']);
    expect(run(['check', '-f']).seen).toEqual(['missing:-f']);
    expect(run(['check', '--output']).seen).toEqual(['missing:--output']);
    expect(run(['check', '--o=json', 'x']).seen).toEqual(['unknown:--o=json']);
    expect(run(['check', '--image-opts=1', 'x']).seen).toEqual(['unknown:--image-opts=1']);
  });
  it('accepts abbreviations and attached arguments', () => {
    expect(run(['check', '--out=json', '--outp', 'human', '-fqcow2', 'x']).seen).toEqual(['256=json', '256=human', 'f=qcow2']);
  });
  it('prints glibc diagnostics when the option string has no leading colon', () => {
    expect(run(['measure', '-x'], 'hf:O:').errors).toEqual(["measure: invalid option -- 'x'\n"]);
    expect(run(['measure', '--o=json'], 'hf:O:').errors).toEqual(["measure: option '--o=json' is ambiguous; possibilities: '--output' '--object'\n"]);
    expect(run(['measure', '--help=1'], 'hf:O:').errors).toEqual(["measure: option '--help' doesn't allow an argument\n"]);
    expect(run(['measure', '--output'], 'hf:O:').errors).toEqual(["measure: option '--output' requires an argument\n"]);
    expect(run(['measure', '-f'], 'hf:O:').errors).toEqual(["measure: option requires an argument -- 'f'\n"]);
  });
  it('stops at the first operand in require-order mode', () => {
    expect(run(['qemu-img', 'check', '-f', 'x'], '+:hVT:').operands).toEqual(['check', '-f', 'x']);
  });
});
