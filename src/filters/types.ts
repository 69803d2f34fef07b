/** Filters as declared in filters/*.yaml, validated but not yet bound to a run's variables. */
import type { SourcePos } from '../scenario/location.ts';

/** A pattern: `text` is literal ($VAR expanded), `regex` is a JavaScript regex (${VAR} inserted escaped). */
export type Pattern = { text: string } | { regex: string };

export interface ReplaceRule {
  kind: 'replace';
  pattern: Pattern;
  /** Literal for text patterns; JavaScript replacement syntax ($1, $&) for regex patterns. */
  with: string;
  /** sed's `g` flag: every match on the line instead of the first. */
  global: boolean;
}

export interface DeleteRule {
  kind: 'delete';
  pattern: Pattern;
}

/** sed's `/from/,/to/ c\TEXT`: the lines of the range are replaced by TEXT at the range's end. */
export interface ChangeRangeRule {
  kind: 'change_range';
  from: Pattern;
  to: Pattern;
  text: string;
}

export interface FormattingSpec {
  match: string;
  split: string;
  option: string;
  keepPrefixes: string[];
  keepContaining?: string;
  keepContainingUnlessImgoptsMatch?: string;
  rank: Record<string, number>;
}

/** _filter_img_create's line handling: Formatting lines vs other lines. */
export interface ImgCreateRule {
  kind: 'img_create';
  filenames: LineRule[];
  formatting: FormattingSpec;
}

/** grep: keep the lines that match (or, inverted, that do not), with `after` lines of context (-A). */
export interface GrepRule {
  kind: 'grep';
  pattern: Pattern;
  invert: boolean;
  after: number;
}

/** tr: every character of `from` becomes the character at the same place in `to`. */
export interface TrRule {
  kind: 'tr';
  from: string;
  to: string;
}

/**
 * _img_info's `while read` loop: drops the "Format specific information:" block (up to its
 * blank line) unless `keep_format_specific`, and the JSON "format-specific" object.
 */
export interface ImgInfoBlocksRule {
  kind: 'img_info_blocks';
  keepFormatSpecific: boolean;
}

export type LineRule = ReplaceRule | DeleteRule | ChangeRangeRule;
export type FilterRule = LineRule | ImgCreateRule | GrepRule | TrRule | ImgInfoBlocksRule;

export interface FilterDef {
  name: string;
  /** 'sed': line by line, an unterminated last line stays so; 'read': bash `while read -r`. */
  lines: 'sed' | 'read';
  rules: FilterRule[];
  at: SourcePos;
}

/** Values a filter may refer to. QEMU_PROG is the QEMU program's basename. */
export interface FilterVars {
  TEST_DIR: string;
  IMGFMT: string;
  IMGPROTO: string;
  QEMU_PROG: string;
  IMGOPTS: string;
}

export const FILTER_VARIABLES: readonly (keyof FilterVars)[] = ['TEST_DIR', 'IMGFMT', 'IMGPROTO', 'QEMU_PROG', 'IMGOPTS'];
