import { describe, expect, it } from 'vitest';
import { colorDiff, transcriptDiff, transcriptsMatch } from './compare.ts';
import { summaryLine } from './results.ts';

describe('transcript comparison (iotests: lines with trailing whitespace stripped)', () => {
  it('ignores trailing blanks, CRs and a missing final newline', () => {
    expect(transcriptsMatch('a\nb\n', 'a  \nb\r\n')).toBe(true);
    expect(transcriptsMatch('a\nb\n', 'a\nb')).toBe(true);
  });
  it('does not ignore leading blanks or extra lines', () => {
    expect(transcriptsMatch('a\n', ' a\n')).toBe(false);
    expect(transcriptsMatch('a\n', 'a\n\n')).toBe(false);
  });
  it('diffs with 3 lines of context and file names', () => {
    const d = transcriptDiff('1\n2\n3\n4\n5\n6\n7\n8\n', '1\n2\n3\n4\nX\n6\n7\n8\n', 'expected/9.out', 'expected/9.out.bad');
    expect(d.split('\n').slice(0, 3)).toEqual(['--- expected/9.out', '+++ expected/9.out.bad', '@@ -2,7 +2,7 @@']);
    expect(d).toContain('\n-5\n+X\n');
    expect(transcriptDiff('a\n', 'a \n', 'x', 'y')).toBe('');
  });
  it('colours removed, added and hunk lines', () => {
    expect(colorDiff('-a\n+b\n@@ x', true)).toBe('\u001b[31m-a\u001b[39m\n\u001b[32m+b\u001b[39m\n\u001b[36m@@ x\u001b[39m');
    expect(colorDiff('-a', false)).toBe('-a');
  });
  it('summarises as "N passed, M failed"', () => {
    expect(summaryLine([{ id: '1', title: '', status: 'pass', durationMs: 1 }, { id: '2', title: '', status: 'fail', durationMs: 1 }, { id: '3', title: '', status: 'skip', durationMs: 0 }])).toBe('1 passed, 1 failed, 1 skipped');
  });
});
