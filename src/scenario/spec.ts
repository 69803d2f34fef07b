/**
 * The scenario format as data: every step kind, its keys and their types. The validator walks
 * these specs, `qtest show` and the JSON Schema test read them, so a new key is added here once.
 */

export type FieldType =
  | 'string' // text; numbers are taken as written (`size: 64M`, `size: 1048576`)
  | 'boolean'
  | 'number'
  | 'integer' // text that expands to a whole number (`$((0x40000))`, `512`); checked when run
  | 'path' // text naming a file; must stay inside TEST_DIR
  | 'string-list' // list of texts (tool arguments); a single text is not accepted
  | 'words' // list of texts, or one text split into words when run (`for s in $sizes`)
  | 'filter-list' // names of filters in filters/*.yaml, or inline rules
  | 'stream-mode' // 'merged' | 'direct'
  | 'stdout-mode' // 'show' | 'discard'
  | 'exchange-list' // QMP send/until pairs
  | 'status-cases' // exit status → message
  | 'steps' // a nested list of steps
  | 'condition' // arithmetic text, or { equal | not_equal: [A, B] }
  | 'name' // a variable name that the step assigns
  | 'text-map' // variable name → text
  | 'bytes'; // printf escapes ('\xff\x00'), single-quoted in YAML

export interface FieldSpec {
  type: FieldType;
  required?: boolean;
  description: string;
}

export interface StepSpec {
  description: string;
  /** The iotests idiom this step stands for (shown in docs and `qtest show`). */
  bash: string;
  fields: Readonly<Record<string, FieldSpec>>;
  /** Field that a scalar or list written directly after the kind fills (`echo: text`). */
  shorthand?: string;
  /** The kind may be written alone (`- echo`, `- check_test_img`). */
  bare?: boolean;
}

const filtersField = {
  type: 'filter-list',
  description: 'Filters the output goes through, in order (`| _filter_a | _filter_b`): names from filters/*.yaml or inline rules ({grep: {regex}}, {replace: {regex, with}}, ...). Default: none.',
} as const satisfies FieldSpec;

const intoField = {
  type: 'name',
  description: 'Store the (filtered) stdout in this variable instead of printing it (`NAME=$(...)`, trailing newlines removed).',
} as const satisfies FieldSpec;

const toolFields = {
  args: { type: 'string-list', required: true, description: 'Arguments after the program name; variables are expanded in each.' },
  filters: filtersField,
  stderr: {
    type: 'stream-mode',
    description:
      "'merged' = `2>&1 | filters` (stderr filtered, in program order); 'direct' (default) = `| filters`, stderr bypasses the filters. Without filters both mean one shared descriptor.",
  },
  stdout: { type: 'stdout-mode', description: "'discard' = `>/dev/null` (stderr still shown); default 'show'." },
  stdin: { type: 'string', description: 'Text fed to the program on stdin (`<<EOF`); qemu-io then reads commands from it.' },
  into: intoField,
  retries: {
    type: 'number',
    description:
      "Run again, up to this many more times, while the exit status is not 0; only the last run's output counts. For host-dependent transient failures of a side-effect-free command (QEMU 7.2's LUKS benchmark may fail with 'Unable to get accurate CPU usage').",
  },
} as const satisfies Record<string, FieldSpec>;

const fileField = { type: 'path', required: true, description: 'The file.' } as const satisfies FieldSpec;

const peekFields = {
  file: fileField,
  offset: { type: 'integer', required: true, description: 'Byte offset.' },
  size: { type: 'integer', required: true, description: 'Number of bytes (1-8 for be/le).' },
  into: { type: 'name', description: 'Store the value in this variable instead of printing it.' },
} as const satisfies Record<string, FieldSpec>;

const pokeIntFields = {
  file: fileField,
  offset: { type: 'integer', required: true, description: 'Byte offset.' },
  size: { type: 'integer', required: true, description: 'Width in bytes (1-8).' },
  value: { type: 'integer', required: true, description: 'The value to write.' },
} as const satisfies Record<string, FieldSpec>;

export const STEP_SPECS = {
  section: {
    description: 'A section banner: a blank line, `=== TITLE ===`, and (unless blank_after is false) another blank line.',
    bash: 'echo; echo "=== TITLE ==="; echo',
    shorthand: 'title',
    fields: {
      title: { type: 'string', required: true, description: 'Banner text between the === markers.' },
      blank_after: { type: 'boolean', description: 'Print the trailing blank line (default true).' },
    },
  },
  subsection: {
    description: 'A sub-section banner: a blank line, then `--- TITLE ---`.',
    bash: 'echo; echo "--- TITLE ---"',
    shorthand: 'title',
    fields: {
      title: { type: 'string', required: true, description: 'Banner text between the --- markers.' },
    },
  },
  echo: {
    description: 'Print text. `- echo` alone prints an empty line; newline: false is `echo -n`.',
    bash: 'echo "TEXT" [| filters]',
    shorthand: 'text',
    bare: true,
    fields: {
      text: { type: 'string', description: 'The text (default empty).' },
      newline: { type: 'boolean', description: 'End with a newline (default true; false = `echo -n`).' },
      filters: filtersField,
      into: intoField,
    },
  },
  printf: {
    description: 'C-style formatted output as bash printf prints it (%d %u %x %o %s %c %%, flags, width, precision; the format is reused while arguments remain).',
    bash: 'printf FORMAT ARGS... / printf -v NAME FORMAT ARGS...',
    shorthand: 'format',
    fields: {
      format: { type: 'string', required: true, description: 'The format; escapes such as \\n are interpreted.' },
      args: { type: 'string-list', description: 'The arguments.' },
      into: { type: 'name', description: 'Store the result in this variable (`printf -v NAME`).' },
    },
  },
  set: {
    description: 'Assign variables in order (later ones may use earlier ones), as `NAME=value` lines in bash. IMGOPTS and CLUSTER_SIZE are read by make_test_img as in common.rc.',
    bash: 'NAME=VALUE; ...',
    fields: {},
  },
  make_test_img: {
    description:
      'Create a test image as _make_test_img does: `qemu-img create -f FMT [-o IMGOPTS,OPTS,cluster_size=CLUSTER_SIZE] [-b BACKING] IMAGE [-F BACKING_FMT] [ARGS] [SIZE] 2>&1 | _filter_img_create`.',
    bash: '[TEST_IMG=IMAGE] [CLUSTER_SIZE=N] [IMGOPTS=O] _make_test_img [-b BACKING -F FMT] [-o OPTS] [SIZE]',
    shorthand: 'size',
    fields: {
      size: { type: 'string', description: 'Virtual size, e.g. 64M (optional with a backing file).' },
      opts: { type: 'string', description: 'Creation options for -o, e.g. "data_file=$TEST_IMG.data".' },
      image: { type: 'path', description: 'Image to create instead of $TEST_IMG (`TEST_IMG=X _make_test_img`).' },
      backing: { type: 'string', description: 'Backing file (-b); relative names are relative to the image.' },
      backing_fmt: { type: 'string', description: 'Backing file format (-F).' },
      fmt: { type: 'string', description: 'Image format instead of $IMGFMT (a function with `local IMGFMT=raw`).' },
      cluster_size: { type: 'string', description: 'CLUSTER_SIZE for this image only (`CLUSTER_SIZE=512 _make_test_img`).' },
      imgopts: { type: 'string', description: 'IMGOPTS for this image only (`IMGOPTS=compat=0.10 _make_test_img`).' },
      args: { type: 'string-list', description: 'Further qemu-img create arguments, placed before the size (e.g. [-u]).' },
    },
  },
  check_test_img: {
    description: 'Check the test image: `qemu-img check [ARGS] -f $IMGFMT IMAGE 2>&1 | _filter_testdir | _filter_qemu_img_check [| filters]`.',
    bash: '_check_test_img [ARGS] [| filters]',
    bare: true,
    fields: {
      args: { type: 'string-list', description: 'Extra arguments before -f (e.g. [-r, all]).' },
      image: { type: 'path', description: 'Image to check instead of $TEST_IMG.' },
      filters: { type: 'filter-list', description: 'Further filters after _filter_qemu_img_check, e.g. an inline grep.' },
    },
  },
  img_info: {
    description: "The image's `qemu-img info` as _img_info shows it (TEST_DIR/IMGFMT filtered, disk size and format-specific block dropped).",
    bash: '[TEST_IMG=IMAGE] _img_info [--format-specific] [ARGS] [| filters]',
    bare: true,
    fields: {
      args: { type: 'string-list', description: 'Extra qemu-img info arguments (e.g. [--output=json]).' },
      image: { type: 'path', description: 'Image instead of $TEST_IMG.' },
      format_specific: { type: 'boolean', description: 'Keep the format-specific block (`_img_info --format-specific`).' },
      filters: { type: 'filter-list', description: "Further filters after _img_info's own, e.g. [{grep: {regex: '^backing file:'}}]." },
    },
  },
  'qemu-img': {
    description: 'Run qemu-img (`$QEMU_IMG ARGS`), nothing prepended.',
    bash: '$QEMU_IMG ARGS [2>&1] [| filters]',
    shorthand: 'args',
    fields: toolFields,
  },
  'qemu-io': {
    description: 'Run qemu-io as `$QEMU_IO ARGS`: `--cache writeback --aio threads -f $IMGFMT` come first (a later -f wins; no_fmt leaves -f out).',
    bash: '$QEMU_IO ARGS [2>&1] [| filters]',
    shorthand: 'args',
    fields: {
      ...toolFields,
      no_fmt: { type: 'boolean', description: 'Leave out `-f $IMGFMT` (`QEMU_IO_OPTIONS=$QEMU_IO_OPTIONS_NO_FMT`).' },
    },
  },
  io_pattern: {
    description:
      'common.pattern\'s io_pattern: prints "=== IO: pattern P" and feeds qemu-io COUNT commands `OP -P P OFFSET SIZE` (OFFSET = START + i*STEP) on stdin, output through _filter_qemu_io.',
    bash: 'io_pattern OP START SIZE STEP COUNT PATTERN',
    fields: {
      op: { type: 'string', required: true, description: 'read, write, readv or writev.' },
      start: { type: 'integer', required: true, description: 'First offset.' },
      size: { type: 'integer', required: true, description: 'Bytes per request.' },
      step: { type: 'integer', required: true, description: 'Distance between request offsets.' },
      count: { type: 'integer', required: true, description: 'Number of requests.' },
      pattern: { type: 'string', required: true, description: 'Pattern byte, as written (0x11).' },
      image: { type: 'path', description: 'Image instead of $TEST_IMG.' },
    },
  },
  exit_status: {
    description:
      "Print the message chosen by the exit status of the last step that ran qemu-img or qemu-io (make_test_img and check_test_img included), as `case ${PIPESTATUS[0]}` does; keys are statuses or 'default'; $STATUS is the status.",
    bash: 'case $result in 0) echo ...;; 1) echo ...;; *) echo ...;; esac',
    fields: {},
  },
  truncate: {
    description: 'Create or resize a file (`truncate -s SIZE FILE`).',
    bash: 'truncate -s SIZE FILE',
    fields: {
      file: fileField,
      size: { type: 'string', required: true, description: 'New size: bytes or with a K/M/G/T suffix (powers of 1024); may be $((arithmetic)).' },
    },
  },
  touch: {
    description: 'Create an empty file if missing, else update its times (`touch FILE`).',
    bash: 'touch FILE',
    shorthand: 'file',
    fields: { file: fileField },
  },
  mkdir: {
    description: 'Create a directory (`mkdir DIR`).',
    bash: 'mkdir DIR',
    shorthand: 'dir',
    fields: { dir: { type: 'path', required: true, description: 'The directory.' } },
  },
  file_size: {
    description: "Print a file's apparent size in bytes and a newline (`du -b FILE | cut -f1`, `stat -c %s`); allocated: true gives the space it uses (`du -B1`).",
    bash: 'du -b FILE | cut -f1',
    shorthand: 'file',
    fields: {
      file: fileField,
      allocated: { type: 'boolean', description: 'Disk usage in bytes (`du -B1`) instead of the apparent size.' },
      into: { type: 'name', description: 'Store the number in this variable instead of printing it.' },
    },
  },
  rm: {
    description: 'Remove a file if it exists (`rm -f FILE`).',
    bash: 'rm -f FILE',
    shorthand: 'file',
    fields: { file: fileField },
  },
  poke_file: {
    description: "Overwrite bytes of a file in place (common.rc's poke_file: `printf DATA | dd of=FILE bs=1 seek=OFFSET conv=notrunc`).",
    bash: 'poke_file FILE OFFSET DATA',
    fields: {
      file: fileField,
      offset: { type: 'integer', required: true, description: 'Byte offset.' },
      data: { type: 'bytes', required: true, description: "The bytes as printf escapes, in single quotes: '\\x00\\x01'." },
    },
  },
  poke_file_be: { description: 'Write a big-endian integer (common.rc poke_file_be).', bash: 'poke_file_be FILE OFFSET SIZE VALUE', fields: pokeIntFields },
  poke_file_le: { description: 'Write a little-endian integer (common.rc poke_file_le).', bash: 'poke_file_le FILE OFFSET SIZE VALUE', fields: pokeIntFields },
  peek_file_be: { description: 'Read a big-endian unsigned integer (common.rc peek_file_be, `%llu`, no newline).', bash: 'peek_file_be FILE OFFSET SIZE', fields: peekFields },
  peek_file_le: { description: 'Read a little-endian unsigned integer (common.rc peek_file_le).', bash: 'peek_file_le FILE OFFSET SIZE', fields: peekFields },
  peek_file_raw: { description: 'Read raw bytes (common.rc peek_file_raw).', bash: 'peek_file_raw FILE OFFSET SIZE', fields: peekFields },
  qcow2: {
    description:
      'qcow2.py on an image: dump-header, dump-header-exts, set-header FIELD VALUE, add-header-ext MAGIC DATA, del-header-ext MAGIC, set-feature-bit GROUP BIT (a `-j` first gives JSON).',
    bash: '$PYTHON qcow2.py IMAGE CMD ARGS [| filters]',
    shorthand: 'args',
    fields: {
      args: { type: 'string-list', required: true, description: 'The command and its arguments.' },
      image: { type: 'path', description: 'Image instead of $TEST_IMG.' },
      filters: filtersField,
    },
  },
  qmp: {
    description:
      'A QMP session: launch QEMU with the given options (greeting consumed silently), run the exchanges, then SIGKILL it (`_launch_qemu … _cleanup_qemu`).',
    bash: '_launch_qemu ARGS; _send_qemu_cmd $QEMU_HANDLE CMD PATTERN; …; _cleanup_qemu',
    fields: {
      launch: { type: 'string-list', required: true, description: 'qemu-system style options, e.g. [-blockdev, "file,node-name=meta,filename=$TEST_IMG"].' },
      exchange: { type: 'exchange-list', required: true, description: 'Commands to send, each read until a line matches its pattern.' },
    },
  },
  if: {
    description: "Run `then` when the condition holds, else `else`. A text condition is bash arithmetic (`(( $i < 3 ))`); {equal: [A, B]} / {not_equal: [A, B]} compare texts (`[ A = B ]`).",
    bash: 'if COND; then STEPS; else STEPS; fi',
    shorthand: 'condition',
    fields: {
      condition: { type: 'condition', required: true, description: 'Arithmetic text, or {equal: [A, B]} / {not_equal: [A, B]}.' },
      then: { type: 'steps', required: true, description: 'Steps run when the condition holds.' },
      else: { type: 'steps', description: 'Steps run otherwise.' },
    },
  },
  foreach: {
    description: 'Run the steps once per value, with the value in the variable `var` (`for VAR in VALUES`). A single text is split into words when run.',
    bash: 'for VAR in VALUES; do STEPS; done',
    shorthand: 'values',
    fields: {
      values: { type: 'words', required: true, description: 'The values: a list, or one text split at blanks (`$(seq 0 31)`, `$sizes`).' },
      var: { type: 'name', required: true, description: 'The loop variable.' },
      steps: { type: 'steps', required: true, description: 'The loop body.' },
    },
  },
  while: {
    description: 'Run the steps while the arithmetic condition holds (checked before each round; at most `max` rounds, default 100000).',
    bash: 'while (( COND )); do STEPS; done',
    shorthand: 'condition',
    fields: {
      condition: { type: 'condition', required: true, description: 'Arithmetic text, or {equal: [A, B]} / {not_equal: [A, B]}.' },
      steps: { type: 'steps', required: true, description: 'The loop body.' },
      max: { type: 'number', description: 'Most rounds allowed before the scenario is stopped as runaway (default 100000, at most 10000000).' },
    },
  },
  call: {
    description: "Run a macro from the scenario's `macros:`; its params become variables (as bash functions set globals).",
    bash: 'FUNCTION ARGS',
    shorthand: 'macro',
    fields: {
      macro: { type: 'string', required: true, description: 'Name of the macro.' },
      args: { type: 'text-map', description: 'Values for the macro params; params left out take their defaults.' },
    },
  },
} as const satisfies Record<string, StepSpec>;

export type StepKind = keyof typeof STEP_SPECS;

export const STEP_KINDS = Object.keys(STEP_SPECS) as StepKind[];

/** Keys of one QMP exchange entry. */
export const EXCHANGE_FIELDS = {
  send: { type: 'string', required: true, description: 'Command text, sent and (if it starts with `{`) echoed verbatim through testdir and imgfmt filters.' },
  until: {
    type: 'string',
    description: 'grep pattern (BRE) the response line must match to stop reading; omitted = do not wait.',
  },
  timeout: { type: 'number', description: 'Seconds to wait for the pattern (default 10, as QEMU_COMM_TIMEOUT; at most 3600).' },
} as const satisfies Record<string, FieldSpec>;

/** Keys of one macro under `macros:`. */
export const MACRO_FIELDS = {
  params: { type: 'text-map', description: 'Parameter names with their default values (null = must be given).' },
  steps: { type: 'steps', required: true, description: 'The macro body.' },
} as const satisfies Record<string, FieldSpec>;

/** Top-level keys of a scenario file. */
export const SCENARIO_FIELDS = {
  id: { type: 'string', required: true, description: 'Test number/name; must match the file name (244 ↔ 244.yaml).' },
  title: { type: 'string', required: true, description: 'One line saying what the test covers.' },
  groups: { type: 'string-list', description: 'Groups for -g/-x selection, e.g. [rw, auto, quick].' },
  requires: { type: 'string', description: 'Supported image formats and protocols, and backend features: { fmt: [qcow2], proto: [file], features: [qmp] }.' },
  macros: { type: 'string', description: 'Named step lists with parameters, run by `call` steps (the iotest\'s shell functions).' },
  steps: { type: 'steps', required: true, description: 'The test body, run in order.' },
} as const satisfies Record<string, FieldSpec>;

export const REQUIRES_FIELDS = ['fmt', 'proto', 'features'] as const;

/** Variables every scenario has; IMGOPTS and CLUSTER_SIZE start empty and may be set. */
export const SCENARIO_VARIABLES = ['TEST_DIR', 'TEST_IMG', 'IMGFMT', 'IMGPROTO', 'IMGOPTS', 'CLUSTER_SIZE'] as const;
/** Variables a `set` may not change. */
export const READONLY_VARIABLES = ['TEST_DIR', 'IMGFMT', 'IMGPROTO', 'STATUS'] as const;
export const STATUS_VARIABLE = 'STATUS';
/** Step keys whose value names a variable the step assigns (collected before validation). */
export const ASSIGNING_KEYS = ['var', 'into'] as const;
