/**
 * GNU getopt / getopt_long as glibc implements them, because QEMU's tools parse their command
 * lines (and qemu-io its commands) with them: options may follow operands (argv is permuted),
 * short options cluster (-rsn, -fraw), long options take unique abbreviations, and errors are
 * printed with glibc's wording. Errors go through `onError` (the caller prints to stderr).
 */

export type ArgKind = 'none' | 'required' | 'optional';

export interface LongOption {
  name: string;
  arg: ArgKind;
  /** What getopt returns for it: usually the equivalent short option letter. */
  val: string;
}

export interface ParsedOption {
  /** The short letter or long option's val; '?' for an error, ':' never (no ':' prefix mode). */
  opt: string;
  arg?: string;
}

export interface GetoptResult {
  options: ParsedOption[];
  /** Non-option arguments in order (after permutation), i.e. argv[optind..]. */
  operands: string[];
}

interface ShortSpec {
  arg: ArgKind;
}

function parseShortSpec(spec: string): { specs: Map<string, ShortSpec>; posixly: boolean } {
  const specs = new Map<string, ShortSpec>();
  let i = 0;
  let posixly = false;
  if (spec[0] === '+') {
    posixly = true;
    i = 1;
  } else if (spec[0] === '-') {
    i = 1;
  }
  for (; i < spec.length; i++) {
    const c = spec[i]!;
    if (c === ':') continue;
    let arg: ArgKind = 'none';
    if (spec[i + 1] === ':') {
      arg = spec[i + 2] === ':' ? 'optional' : 'required';
    }
    specs.set(c, { arg });
  }
  return { specs, posixly };
}

/**
 * An incremental getopt over `args` (argv without argv[0]): call next() until it returns
 * null, acting on each option as it comes (as C callers do: `-V` exits before a later bad
 * option is even looked at), then read operands(). `progname` is what glibc prints as argv[0]
 * in its error messages, which go to `onError`; an error yields opt '?'.
 */
export class Getopt {
  private readonly args: readonly string[];
  private readonly specs: Map<string, ShortSpec>;
  private readonly posixly: boolean;
  private readonly longOptions: readonly LongOption[];
  private readonly progname: string;
  private readonly onError: (message: string) => void;
  private index = 0;
  /** Position inside a cluster of short options ("-rsn"), 0 when between arguments. */
  private clusterPos = 0;
  private readonly skipped: string[] = [];
  private readonly pending: ParsedOption[] = [];
  private done = false;

  constructor(
    args: readonly string[],
    shortSpec: string,
    longOptions: readonly LongOption[],
    progname: string,
    onError: (message: string) => void,
  ) {
    const parsed = parseShortSpec(shortSpec);
    this.args = args;
    this.specs = parsed.specs;
    this.posixly = parsed.posixly;
    this.longOptions = longOptions;
    this.progname = progname;
    this.onError = onError;
  }

  next(): ParsedOption | null {
    if (this.pending.length > 0) return this.pending.shift()!;
    if (this.done) return null;
    if (this.clusterPos > 0) return this.nextInCluster();
    while (this.index < this.args.length) {
      const a = this.args[this.index]!;
      if (a === '--') {
        this.index++;
        this.done = true;
        return null;
      }
      if (a.length < 2 || a[0] !== '-') {
        if (this.posixly) {
          this.done = true;
          return null;
        }
        this.skipped.push(a);
        this.index++;
        continue;
      }
      if (a.startsWith('--')) {
        this.index = parseLong(this.args, this.index, this.longOptions, this.progname, this.onError, this.pending);
        return this.pending.shift() ?? null;
      }
      this.clusterPos = 1;
      return this.nextInCluster();
    }
    this.done = true;
    return null;
  }

  private nextInCluster(): ParsedOption {
    const a = this.args[this.index]!;
    const c = a[this.clusterPos]!;
    this.clusterPos++;
    const endCluster = (): void => {
      this.clusterPos = 0;
      this.index++;
    };
    const spec = this.specs.get(c);
    if (!spec) {
      this.onError(`${this.progname}: invalid option -- '${c}'\n`);
      if (this.clusterPos >= a.length) endCluster();
      return { opt: '?' };
    }
    if (spec.arg === 'none') {
      if (this.clusterPos >= a.length) endCluster();
      return { opt: c };
    }
    const rest = a.slice(this.clusterPos);
    endCluster();
    if (rest.length > 0) return { opt: c, arg: rest };
    if (spec.arg === 'optional') return { opt: c };
    if (this.index < this.args.length) {
      const arg = this.args[this.index]!;
      this.index++;
      return { opt: c, arg };
    }
    this.onError(`${this.progname}: option requires an argument -- '${c}'\n`);
    return { opt: '?' };
  }

  /** argv[optind..] after parsing: the skipped non-options, then everything not parsed. */
  operands(): string[] {
    return [...this.skipped, ...this.args.slice(this.index)];
  }
}

/** Parse everything at once (convenience for callers that do not need incremental order). */
export function getopt(
  args: readonly string[],
  shortSpec: string,
  longOptions: readonly LongOption[],
  progname: string,
  onError: (message: string) => void,
): GetoptResult {
  const g = new Getopt(args, shortSpec, longOptions, progname, onError);
  const options: ParsedOption[] = [];
  for (let o = g.next(); o !== null; o = g.next()) {
    options.push(o);
    if (o.opt === '?') break;
  }
  return { options, operands: g.operands() };
}

function parseLong(
  args: readonly string[],
  index: number,
  longOptions: readonly LongOption[],
  progname: string,
  onError: (message: string) => void,
  out: ParsedOption[],
): number {
  const a = args[index]!;
  const body = a.slice(2);
  const eq = body.indexOf('=');
  const name = eq >= 0 ? body.slice(0, eq) : body;
  const value = eq >= 0 ? body.slice(eq + 1) : undefined;
  let match = longOptions.find((o) => o.name === name);
  if (!match) {
    const candidates = longOptions.filter((o) => o.name.startsWith(name));
    const distinct = candidates.filter(
      (o, idx) => candidates.findIndex((p) => p.arg === o.arg && p.val === o.val) === idx,
    );
    if (distinct.length > 1) {
      onError(`${progname}: option '--${name}' is ambiguous; possibilities:${candidates.map((o) => ` '--${o.name}'`).join('')}\n`);
      out.push({ opt: '?' });
      return index + 1;
    }
    match = candidates[0];
  }
  if (!match) {
    onError(`${progname}: unrecognized option '--${body}'\n`);
    out.push({ opt: '?' });
    return index + 1;
  }
  if (match.arg === 'none') {
    if (value !== undefined) {
      onError(`${progname}: option '--${match.name}' doesn't allow an argument\n`);
      out.push({ opt: '?' });
      return index + 1;
    }
    out.push({ opt: match.val });
    return index + 1;
  }
  if (value !== undefined) {
    out.push({ opt: match.val, arg: value });
    return index + 1;
  }
  if (match.arg === 'optional') {
    out.push({ opt: match.val });
    return index + 1;
  }
  if (index + 1 < args.length) {
    out.push({ opt: match.val, arg: args[index + 1]! });
    return index + 2;
  }
  onError(`${progname}: option '--${match.name}' requires an argument\n`);
  out.push({ opt: '?' });
  return index + 1;
}
