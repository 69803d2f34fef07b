import { describe, expect, it } from 'vitest';
import { breToRegExp } from './bre.ts';

describe('grep BRE patterns of _send_qemu_cmd', () => {
  it('matches the patterns 244 uses', () => {
    expect(breToRegExp('return').test('{"return": {}}\r')).toBe(true);
    expect(breToRegExp('"status": "concluded"').test('{"data": {"status": "concluded", "id": "create"}}')).toBe(true);
    expect(breToRegExp('"status": "concluded"').test('{"data": {"status": "pending"}}')).toBe(false);
  });

  it('treats ( ) { } | + ? literally and their backslashed forms as operators', () => {
    expect(breToRegExp('a(b)+').test('xa(b)+y')).toBe(true);
    expect(breToRegExp('a\\(b\\)\\+$').test('abbb')).toBe(true);
    expect(breToRegExp('x\\{2\\}').test('axxb')).toBe(true);
    expect(breToRegExp('cat\\|dog').test('hotdog')).toBe(true);
  });

  it('anchors only where BRE anchors, and * is literal at the start', () => {
    expect(breToRegExp('^{"QMP"').test('{"QMP": {}}')).toBe(true);
    expect(breToRegExp('a^b$c').test('a^b$c')).toBe(true);
    expect(breToRegExp('*x').test('a*x')).toBe(true);
    expect(breToRegExp('ret.rn$').test('return')).toBe(true);
  });

  it('supports bracket expressions and character classes', () => {
    expect(breToRegExp('[[:digit:]]\\+ ops').test('12 ops')).toBe(true);
    expect(breToRegExp('[]x]').test(']')).toBe(true);
    expect(breToRegExp('[^a-z]').test('abc')).toBe(false);
  });
});
