import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acceptTarget, listVariants, parseVersion, selectVariant } from './expected.ts';
import { orderByTiming, parseShard, RunState, shard } from './state.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-expected-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function files(...names: string[]): void {
  for (const n of names) fs.writeFileSync(path.join(dir, n), n);
}
const chosen = (fmt: string, version: string): string | undefined => {
  const v = selectVariant(listVariants(dir, '178'), fmt, version);
  return v ? path.basename(v.file) : undefined;
};

describe('expected transcript variants', () => {
  it('lists the variants of one id, not .bad files or other ids', () => {
    files('178.out', '178.out.qcow2', '178.out.raw@8.0', '178.out@9.1', '178.out.bad', '178.out.qcow2.bad', '1780.out', '17.out');
    expect(listVariants(dir, '178').map((v) => path.basename(v.file)).sort()).toEqual(['178.out', '178.out.qcow2', '178.out.raw@8.0', '178.out@9.1']);
  });

  it('prefers files for the image format, then the highest version not above the run', () => {
    files('178.out', '178.out@8.2', '178.out.qcow2', '178.out.qcow2@8.0', '178.out.raw@9.0');
    expect(chosen('qcow2', '7.2.22')).toBe('178.out.qcow2');
    expect(chosen('qcow2', '8.0')).toBe('178.out.qcow2@8.0');
    expect(chosen('qcow2', '9.2.1')).toBe('178.out.qcow2@8.0');
    // Only a raw file newer than the run: nothing for raw 8.2 (format-specific files exclude generic ones).
    expect(chosen('raw', '8.2')).toBeUndefined();
    expect(chosen('raw', '9.0')).toBe('178.out.raw@9.0');
    expect(chosen('vmdk', '7.2')).toBe('178.out');
    expect(chosen('vmdk', '8.2.0')).toBe('178.out@8.2');
  });

  it('--accept writes the selected file on the reference version, a new @X.Y variant on others', () => {
    files('178.out', '178.out.qcow2');
    const sel = (fmt: string, v: string) => selectVariant(listVariants(dir, '178'), fmt, v);
    expect(acceptTarget(dir, '178', sel('qcow2', '7.2.22'), '7.2.22', '7.2')).toBe(path.join(dir, '178.out.qcow2'));
    expect(acceptTarget(dir, '178', sel('qcow2', '8.2.1'), '8.2.1', '7.2')).toBe(path.join(dir, '178.out.qcow2@8.2'));
    expect(acceptTarget(dir, '178', sel('raw', '8.2.1'), '8.2.1', '7.2')).toBe(path.join(dir, '178.out@8.2'));
    expect(acceptTarget(dir, '900', undefined, '9.0.0', '7.2')).toBe(path.join(dir, '900.out'));
  });

  it('parses versions', () => {
    expect(parseVersion('7.2.22')).toEqual([7, 2]);
    expect(parseVersion('10.1')).toEqual([10, 1]);
    expect(parseVersion('7')).toBeNull();
  });
});

describe('run state: last results, timings, order and shards', () => {
  it('remembers failures and durations per backend', () => {
    const st = new RunState(path.join(dir, 'state'));
    expect(st.failedIds()).toBeUndefined();
    st.record('qemu', [
      { id: '1', title: '', status: 'pass', durationMs: 10 },
      { id: '2', title: '', status: 'fail', durationMs: 20 },
      { id: '3', title: '', status: 'error', durationMs: 5 },
      { id: '4', title: '', status: 'skip', durationMs: 0 },
    ]);
    expect(st.failedIds()).toEqual(['2', '3']);
    expect(st.timings('qemu')).toEqual({ '1': 10, '2': 20 });
    st.record('builtin', [{ id: '1', title: '', status: 'pass', durationMs: 3 }]);
    expect(st.timings('qemu')).toEqual({ '1': 10, '2': 20 });
    expect(st.failedIds()).toEqual([]);
  });

  it('treats a corrupt state file as empty', () => {
    fs.mkdirSync(path.join(dir, 'state'));
    fs.writeFileSync(path.join(dir, 'state/timings.json'), '{nope');
    expect(new RunState(path.join(dir, 'state')).timings('qemu')).toEqual({});
  });

  it('-j runs the slowest known first, unknown ones before them; -j 1 keeps the order', () => {
    const items = ['a', 'b', 'c', 'd'].map((id) => ({ id }));
    expect(orderByTiming(items, { a: 1, b: 300, d: 20 }, 2).map((x) => x.id)).toEqual(['c', 'b', 'd', 'a']);
    expect(orderByTiming(items, { a: 1, b: 300 }, 1).map((x) => x.id)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('--shard I/N takes round-robin slices that together cover the selection once', () => {
    const items = [1, 2, 3, 4, 5, 6, 7];
    const parts = [1, 2, 3].map((i) => shard(items, { index: i, count: 3 }));
    expect(parts).toEqual([[1, 4, 7], [2, 5], [3, 6]]);
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    expect(parseShard('0/3')).toBeNull();
    expect(parseShard('4/3')).toBeNull();
    expect(parseShard('x')).toBeNull();
  });
});
