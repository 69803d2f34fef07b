/**
 * Source positions and the error type every scenario/filter validation problem becomes.
 * Lines and columns are 1-based, as editors and compilers print them.
 */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export interface Diagnostic extends SourcePos {
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** One or more problems in a scenario or filter file; the message lists them all. */
export class ValidationError extends Error {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'ValidationError';
    this.diagnostics = diagnostics;
  }
}

/** Maps character offsets of one source text to line/column. */
export class LineIndex {
  private readonly starts: number[] = [0];
  readonly file: string;
  constructor(file: string, text: string) {
    this.file = file;
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }

  pos(offset: number): SourcePos {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { file: this.file, line: lo + 1, col: offset - this.starts[lo]! + 1 };
  }
}
