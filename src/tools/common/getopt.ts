/**
 * GNU getopt / getopt_long as glibc implements them, step for step, because QEMU's tools parse
 * their command lines (and qemu-io its commands) with them: options may follow operands (argv
 * is permuted in place), short options cluster (-rsn, -fraw), long options take unique
 * abbreviations, errors are worded as glibc words them, and qemu-img quotes
 * `argv[optind - 1]` in its own messages, whose value depends on exactly where optind stands.
 */

export interface LongOption {
  name: string;
  hasArg: boolean;
  /** What getopt returns for this option (a short option letter or a number >= 256). */
  val: string | number;
}

export type GetoptResult =
  | { kind: 'option'; opt: string | number; optarg?: string }
  /** Unknown or ambiguous option, or an argument given to a flag ('?'). */
  | { kind: 'unknown' }
  /** A required argument is missing (':' when the option string starts with ':'). */
  | { kind: 'missing' }
  | { kind: 'end' };

type Ordering = 'permute' | 'require-order' | 'return-in-order';

export class Getopt {
  /** The argument vector, permuted in place as glibc does; argv[0] is the program name. */
  readonly argv: string[];
  optind = 1;
  optarg: string | undefined;

  private readonly shortSpec: string;
  /** glibc prints its own diagnostics unless the option string starts with ':'. */
  private readonly printErrors: boolean;
  private readonly report: (message: string) => void;
  private readonly longopts: readonly LongOption[];
  private readonly ordering: Ordering;
  private nextchar: string | null = null;
  private firstNonopt = 1;
  private lastNonopt = 1;

  constructor(
    argv: string[],
    optstring: string,
    longopts: readonly LongOption[] = [],
    posixlyCorrect = false,
    report: (message: string) => void = () => {},
  ) {
    this.argv = argv;
    this.longopts = longopts;
    let spec = optstring;
    if (spec.startsWith('-')) {
      this.ordering = 'return-in-order';
      spec = spec.slice(1);
    } else if (spec.startsWith('+')) {
      this.ordering = 'require-order';
      spec = spec.slice(1);
    } else {
      this.ordering = posixlyCorrect ? 'require-order' : 'permute';
    }
    this.shortSpec = spec;
    this.printErrors = !spec.startsWith(':');
    this.report = report;
  }

  /** argv[optind - 1], the text qemu-img quotes in its option errors. */
  previousArg(): string {
    return this.argv[this.optind - 1] ?? '';
  }

  /** Non-option arguments left after parsing ended (getopt returned 'end'). */
  operands(): string[] {
    return this.argv.slice(this.optind);
  }

  next(): GetoptResult {
    const argv = this.argv;
    const argc = argv.length;
    this.optarg = undefined;

    if (this.nextchar === null || this.nextchar === '') {
      if (this.lastNonopt > this.optind) this.lastNonopt = this.optind;
      if (this.firstNonopt > this.optind) this.firstNonopt = this.optind;

      if (this.ordering === 'permute') {
        if (this.firstNonopt !== this.lastNonopt && this.lastNonopt !== this.optind) this.exchange();
        else if (this.lastNonopt !== this.optind) this.firstNonopt = this.optind;
        while (this.optind < argc && isNonOption(argv[this.optind]!)) this.optind++;
        this.lastNonopt = this.optind;
      }

      if (this.optind !== argc && argv[this.optind] === '--') {
        this.optind++;
        if (this.firstNonopt !== this.lastNonopt && this.lastNonopt !== this.optind) this.exchange();
        else if (this.firstNonopt === this.lastNonopt) this.firstNonopt = this.optind;
        this.lastNonopt = argc;
        this.optind = argc;
      }

      if (this.optind === argc) {
        if (this.firstNonopt !== this.lastNonopt) this.optind = this.firstNonopt;
        return { kind: 'end' };
      }

      const arg = argv[this.optind]!;
      if (isNonOption(arg)) {
        if (this.ordering === 'require-order') return { kind: 'end' };
        this.optind++;
        return { kind: 'option', opt: 1, optarg: arg };
      }

      if (this.longopts.length > 0 && arg[1] === '-') {
        this.nextchar = arg.slice(2);
        return this.longOption();
      }
      this.nextchar = arg.slice(1);
    }

    const c = this.nextchar[0]!;
    this.nextchar = this.nextchar.slice(1);
    const at = this.shortSpec.indexOf(c);
    if (this.nextchar === '') this.optind++;
    if (at < 0 || c === ':' || c === ';') {
      this.error(`invalid option -- '${c}'`);
      return { kind: 'unknown' };
    }

    if (this.shortSpec[at + 1] === ':') {
      if (this.nextchar !== '') {
        this.optarg = this.nextchar;
        this.optind++;
      } else if (this.optind === argc) {
        this.nextchar = null;
        this.error(`option requires an argument -- '${c}'`);
        return this.printErrors ? { kind: 'unknown' } : { kind: 'missing' };
      } else {
        this.optarg = argv[this.optind++];
      }
      this.nextchar = null;
    }
    return { kind: 'option', opt: c, optarg: this.optarg };
  }

  private longOption(): GetoptResult {
    const text = this.nextchar ?? '';
    const eq = text.indexOf('=');
    const name = eq < 0 ? text : text.slice(0, eq);

    let found = this.longopts.find((o) => o.name === name);
    if (!found) {
      const candidates = this.longopts.filter((o) => o.name.startsWith(name));
      found = candidates[0];
      const ambiguous = candidates.some((o) => o.hasArg !== found!.hasArg || o.val !== found!.val);
      if (ambiguous) {
        const list = candidates.map((o) => ` '--${o.name}'`).join('');
        this.error(`option '--${text}' is ambiguous; possibilities:${list}`);
        this.nextchar = null;
        this.optind++;
        return { kind: 'unknown' };
      }
    }
    if (!found) {
      this.error(`unrecognized option '--${text}'`);
      this.nextchar = null;
      this.optind++;
      return { kind: 'unknown' };
    }

    this.optind++;
    this.nextchar = null;
    if (eq >= 0) {
      if (!found.hasArg) {
        this.error(`option '--${found.name}' doesn't allow an argument`);
        return { kind: 'unknown' };
      }
      this.optarg = text.slice(eq + 1);
    } else if (found.hasArg) {
      if (this.optind < this.argv.length) {
        this.optarg = this.argv[this.optind++];
      } else {
        this.error(`option '--${found.name}' requires an argument`);
        return this.printErrors ? { kind: 'unknown' } : { kind: 'missing' };
      }
    }
    return { kind: 'option', opt: found.val, optarg: this.optarg };
  }

  private error(message: string): void {
    if (this.printErrors) this.report(`${this.argv[0]}: ${message}\n`);
  }

  /** glibc's exchange(): move the skipped non-options behind the options seen since. */
  private exchange(): void {
    const argv = this.argv;
    const nonopts = argv.slice(this.firstNonopt, this.lastNonopt);
    const opts = argv.slice(this.lastNonopt, this.optind);
    argv.splice(this.firstNonopt, this.optind - this.firstNonopt, ...opts, ...nonopts);
    this.firstNonopt += this.optind - this.lastNonopt;
    this.lastNonopt = this.optind;
  }
}

function isNonOption(arg: string): boolean {
  return arg[0] !== '-' || arg.length === 1;
}

/** One option as a plain C getopt loop sees it: '?' for any error. */
export interface ParsedOption {
  opt: string;
  arg?: string;
}

/**
 * The C loop `while ((c = getopt_long(...)) != -1)` of a caller that treats every error as
 * '?' (qemu-io): next() returns null at the end; operands() is argv[optind..] afterwards.
 */
export class OptionLoop {
  private readonly g: Getopt;

  /** argv[0] is the program (or qemu-io command) name glibc prints in its messages. */
  constructor(argv: string[], optstring: string, longopts: readonly LongOption[], posixlyCorrect: boolean, report: (message: string) => void) {
    this.g = new Getopt(argv, optstring, longopts, posixlyCorrect, report);
  }

  next(): ParsedOption | null {
    const r = this.g.next();
    if (r.kind === 'end') return null;
    if (r.kind !== 'option') return { opt: '?' };
    return r.optarg === undefined ? { opt: String(r.opt) } : { opt: String(r.opt), arg: r.optarg };
  }

  operands(): string[] {
    return this.g.operands();
  }
}
