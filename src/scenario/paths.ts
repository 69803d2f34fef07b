/**
 * Keeps a scenario inside its TEST_DIR. Named files (image:, file:) are paths outright; tool
 * arguments are searched for anything path-like: whitespace-separated words (qemu-io -c
 * commands), comma-separated `key=value` option lists, `json:{...}` filenames' strings and
 * `proto:/path` prefixes. A candidate that is absolute, starts with `~` or has a `..` segment must
 * resolve inside TEST_DIR; plain relative names resolve against TEST_DIR (the tools' cwd) anyway.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PathRefusedError } from '../tools/context.ts';
import type { PathPolicy } from '../tools/context.ts';

/** Strings inside a JSON-ish text ('single' or "double" quoted, as QEMU's parser accepts). */
export function jsonStrings(text: string): string[] {
  const out: string[] = [];
  const re = /'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g;
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2] ?? '').replace(/\\(.)/g, '$1'));
  return out;
}

/** Every substring of a tool argument that a tool might open as a file. */
export function pathCandidates(arg: string): string[] {
  if (arg.startsWith('json:')) return jsonStrings(arg.slice(5));
  const out: string[] = [];
  for (const word of arg.split(/\s+/)) {
    if (word === '') continue;
    if (word.startsWith('json:')) {
      out.push(...jsonStrings(word.slice(5)));
      continue;
    }
    // QEMU option lists escape a literal comma as ",,"; splitting there too only adds candidates.
    for (const piece of word.split(',')) {
      const eq = piece.indexOf('=');
      if (eq >= 0) out.push(piece.slice(eq + 1));
      else if (!piece.startsWith('-')) out.push(piece);
    }
  }
  return out.filter((c) => c !== '').map(stripProtocol);
}

function stripProtocol(candidate: string): string {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:(.*)$/s.exec(candidate);
  return m && m[1]!.startsWith('/') ? m[1]! : candidate;
}

/** Whether a candidate could leave the directory it is resolved against. */
export function isPathLike(candidate: string): boolean {
  return candidate.startsWith('/') || candidate.startsWith('~') || candidate.split('/').includes('..');
}

export function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Lexical check: the reason a path resolved against testDir escapes it, or null. */
export function lexicalEscape(candidate: string, testDir: string): string | null {
  if (candidate.startsWith('~')) return 'home-directory paths are not allowed';
  const resolved = path.resolve(testDir, candidate);
  return isInside(testDir, resolved) ? null : 'it resolves outside TEST_DIR';
}

/** Resolves symlinks in the longest existing prefix of an absolute path. */
export function realPathOfPrefix(absolutePath: string): string {
  let existing = absolutePath;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync.native(existing), ...rest.reverse());
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return absolutePath;
      rest.push(path.basename(existing));
      existing = parent;
    }
  }
}

/** Whether a directory entry (of any kind, dangling links included) exists; true when unsure. */
function existsAsEntry(p: string): boolean {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return true;
  }
}

/** Run-time check including symlinks: the reason the path escapes, or null. */
export function realEscape(candidate: string, testDir: string, testDirReal: string): string | null {
  const lexical = lexicalEscape(candidate, testDir);
  if (lexical) return lexical;
  const resolved = path.resolve(testDir, candidate);
  // Most candidates are words of a command that name nothing directly in TEST_DIR: such a name
  // resolves to testDirReal/name, so one lstat settles it (no realpath, no exception).
  if (path.dirname(resolved) === testDir && !existsAsEntry(resolved)) return null;
  const real = realPathOfPrefix(resolved);
  return isInside(testDirReal, real) ? null : 'it leads outside TEST_DIR through a symbolic link';
}

/** The PathPolicy handed to in-process tools: everything must stay inside TEST_DIR. */
export class TestDirPathPolicy implements PathPolicy {
  readonly testDir: string;
  private readonly testDirReal: string;
  /** Every path refused so far, in order (the runner stops the scenario when one shows up). */
  readonly refused: string[] = [];
  constructor(testDir: string) {
    this.testDir = path.resolve(testDir);
    this.testDirReal = fs.realpathSync(this.testDir);
  }

  check(absolutePath: string, _purpose: 'read' | 'write' | 'create' | 'delete'): void {
    const reason = realEscape(absolutePath, this.testDir, this.testDirReal);
    if (reason) {
      this.refused.push(absolutePath);
      throw new PathRefusedError(absolutePath, `${reason} (${this.testDir})`);
    }
  }
}
