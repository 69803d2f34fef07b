import { describe, expect, it } from 'vitest';
import { formatFixed } from './cformat.ts';
import { humanSize, timeString } from './human.ts';
import { cvtnum, qemuStrtosz, strtolFull } from './numbers.ts';
import { Errno } from '../../errno.ts';

describe('formatFixed (glibc %.Nf)', () => {
  it('rounds exact ties to even like glibc, unlike toFixed', () => {
    expect(formatFixed(0.0625, 3)).toBe('0.062');
    expect(formatFixed(1.0625, 3)).toBe('1.062');
    expect(formatFixed(0.1875, 3)).toBe('0.188');
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatFixed(3.5, 0)).toBe('4');
  });
  it('formats ordinary values, infinities and tiny numbers', () => {
    expect(formatFixed(45953.77049180328, 4)).toBe('45953.7705');
    expect(formatFixed(512, 6)).toBe('512.000000');
    expect(formatFixed(Infinity, 3)).toBe('inf');
    expect(formatFixed(1e-300, 3)).toBe('0.000');
    expect(formatFixed(0.9999, 3)).toBe('1.000');
  });
});

describe('humanSize (cvtstr)', () => {
  it('matches qemu-io for the sizes FACTS lists', () => {
    expect(humanSize(512)).toBe('512 bytes');
    expect(humanSize(1)).toBe('1 bytes');
    expect(humanSize(0)).toBe('0 bytes');
    expect(humanSize(65536)).toBe('64 KiB');
    expect(humanSize(1048576)).toBe('1 MiB');
    expect(humanSize(4 * 1048576)).toBe('4 MiB');
    expect(humanSize(1000000)).toBe('976.562 KiB');
    expect(humanSize(1536)).toBe('1.500 KiB');
    expect(humanSize(1264)).toBe('1.234 KiB');
    expect(humanSize(2 ** 60)).toBe('1 EiB');
    expect(humanSize(0.5)).toBe('0.500000 bytes');
  });
});

describe('timeString (timestr)', () => {
  it('prints short runs as seconds and long ones with hours', () => {
    expect(timeString({ sec: 0, nsec: 1_234_567 })).toBe('00.00 sec');
    expect(timeString({ sec: 0, nsec: 512_000_000 })).toBe('00.51 sec');
    expect(timeString({ sec: 3723, nsec: 500_000_000 })).toBe('1:02:03.50');
    expect(timeString({ sec: 0, nsec: 0 }, true)).toBe('0:00:00.00');
  });
});

describe('qemuStrtosz (7.2 semantics, checked against real qemu-io)', () => {
  const ok = (t: string) => {
    const r = qemuStrtosz(t);
    if (!r.ok) throw new Error(`${t} failed with errno ${r.errno}`);
    return r.value;
  };
  const err = (t: string) => {
    const r = qemuStrtosz(t);
    return r.ok ? null : r.errno;
  };
  it('accepts decimal, hex, fractions with a scale, suffixes in either case', () => {
    expect(ok('0')).toBe(0n);
    expect(ok('1k')).toBe(1024n);
    expect(ok('1K')).toBe(1024n);
    expect(ok('1.5k')).toBe(1536n);
    expect(ok('0x10')).toBe(16n);
    expect(ok('0X10')).toBe(16n);
    expect(ok(' 1')).toBe(1n);
    expect(ok('+1')).toBe(1n);
    expect(ok('1b')).toBe(1n);
    expect(ok('010')).toBe(10n);
    expect(ok('0.5k')).toBe(512n);
    expect(ok('1.0000001k')).toBe(1024n);
    expect(ok('1.23456789k')).toBe(1264n);
    expect(ok('1.')).toBe(1n);
    expect(ok('1.k')).toBe(1024n);
    expect(ok('1.e')).toBe(2n ** 60n);
    expect(ok('1.9999999999999999999k')).toBe(1024n);
    expect(ok('4.2G')).toBe(4509715661n);
  });
  it('warns about hex with a suffix', () => {
    const r = qemuStrtosz('0x10k');
    expect(r).toEqual({ ok: true, value: 16384n, warning: 'Using a multiplier suffix on hex numbers is deprecated: 0x10k' });
  });
  it('rejects what QEMU rejects, with the same errno', () => {
    for (const t of ['0x1.8k', '1e3', '-1', '1kb', '1.5', '0x', '1x', '', '.5k', '1.5b', '00x10', '0x10.5', '1..5k', '1_0']) {
      expect(err(t), t).toBe(Errno.EINVAL);
    }
    expect(err('16E')).toBe(Errno.ERANGE);
    expect(err('18446744073709551616')).toBe(Errno.ERANGE);
  });
  it('cvtnum limits to INT64_MAX', () => {
    expect(cvtnum('8E')).toEqual({ ok: false, errno: Errno.ERANGE });
    expect(cvtnum('9223372036854775808')).toEqual({ ok: false, errno: Errno.ERANGE });
    expect(cvtnum('9223372036854775807')).toEqual({ ok: true, value: 9223372036854775807n });
    expect(cvtnum('7.99e').ok).toBe(true);
  });
});

describe('strtolFull', () => {
  it('parses C integer literals and rejects trailing text', () => {
    expect(strtolFull('0x11')).toBe(17);
    expect(strtolFull('42')).toBe(42);
    expect(strtolFull('010')).toBe(8);
    expect(strtolFull('-1')).toBe(-1);
    expect(strtolFull('1k')).toBeNull();
    expect(strtolFull('')).toBeNull();
  });
});
