/**
 * The scenario format as data: every step kind, its keys and their types. The validator walks
 * these specs, `qtest show` and the JSON Schema test read them, so a new key is added here once.
 */

export type FieldType =
  | 'string' // text; numbers are taken as written (`size: 64M`, `size: 1048576`)
  | 'boolean'
  | 'number'
  | 'path' // text naming a file; must stay inside TEST_DIR
  | 'string-list' // list of texts (tool arguments); a single text is not accepted
  | 'filter-list' // names of filters in filters/*.yaml
  | 'stream-mode' // 'merged' | 'direct'
  | 'exchange-list' // QMP send/until pairs
  | 'status-cases'; // exit status → message

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

const toolFields = {
  args: { type: 'string-list', required: true, description: 'Arguments after the program name; variables are expanded in each.' },
  filters: {
    type: 'filter-list',
    description: 'Filters the output goes through, in order (`| _filter_a | _filter_b`). Default: none.',
  },
  stderr: {
    type: 'stream-mode',
    description:
      "'merged' = `2>&1 | filters` (stderr filtered, in program order); 'direct' (default) = `| filters`, stderr bypasses the filters. Without filters both mean one shared descriptor.",
  },
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
    bash: 'echo "TEXT"',
    shorthand: 'text',
    bare: true,
    fields: {
      text: { type: 'string', description: 'The text (default empty).' },
      newline: { type: 'boolean', description: 'End with a newline (default true; false = `echo -n`).' },
    },
  },
  make_test_img: {
    description: 'Create a test image: `qemu-img create -f $IMGFMT [-o OPTS] IMAGE SIZE 2>&1 | _filter_img_create`.',
    bash: '_make_test_img [-o OPTS] SIZE',
    shorthand: 'size',
    fields: {
      size: { type: 'string', required: true, description: 'Virtual size, e.g. 64M.' },
      opts: { type: 'string', description: 'Creation options for -o, e.g. "data_file=$TEST_IMG.data".' },
      image: { type: 'path', description: 'Image to create instead of $TEST_IMG (`TEST_IMG=X _make_test_img`).' },
    },
  },
  check_test_img: {
    description: 'Check the test image: `qemu-img check [ARGS] -f $IMGFMT IMAGE 2>&1 | _filter_testdir | _filter_qemu_img_check`.',
    bash: '_check_test_img',
    bare: true,
    fields: {
      args: { type: 'string-list', description: 'Extra arguments before -f (e.g. [-r, all]).' },
      image: { type: 'path', description: 'Image to check instead of $TEST_IMG.' },
    },
  },
  'qemu-img': {
    description: 'Run qemu-img (`$QEMU_IMG ARGS`), nothing prepended.',
    bash: '$QEMU_IMG ARGS [2>&1] [| filters]',
    shorthand: 'args',
    fields: toolFields,
  },
  'qemu-io': {
    description: 'Run qemu-io as `$QEMU_IO ARGS`: `--cache writeback --aio threads -f $IMGFMT` come first (a later -f wins).',
    bash: '$QEMU_IO ARGS [2>&1] [| filters]',
    shorthand: 'args',
    fields: toolFields,
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
      file: { type: 'path', required: true, description: 'The file.' },
      size: { type: 'string', required: true, description: 'New size: bytes or with a K/M/G/T suffix (powers of 1024).' },
    },
  },
  touch: {
    description: 'Create an empty file if missing, else update its times (`touch FILE`).',
    bash: 'touch FILE',
    shorthand: 'file',
    fields: { file: { type: 'path', required: true, description: 'The file.' } },
  },
  file_size: {
    description: "Print a file's apparent size in bytes and a newline (`du -b FILE | cut -f1`).",
    bash: 'du -b FILE | cut -f1',
    shorthand: 'file',
    fields: { file: { type: 'path', required: true, description: 'The file.' } },
  },
  rm: {
    description: 'Remove a file if it exists (`rm -f FILE`).',
    bash: 'rm -f FILE',
    shorthand: 'file',
    fields: { file: { type: 'path', required: true, description: 'The file.' } },
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
  timeout: { type: 'number', description: 'Seconds to wait for the pattern (default 10, as QEMU_COMM_TIMEOUT).' },
} as const satisfies Record<string, FieldSpec>;

/** Top-level keys of a scenario file. */
export const SCENARIO_FIELDS = {
  id: { type: 'string', required: true, description: 'Test number/name; must match the file name (244 ↔ 244.yaml).' },
  title: { type: 'string', required: true, description: 'One line saying what the test covers.' },
  groups: { type: 'string-list', description: 'Groups for -g/-x selection, e.g. [rw, auto, quick].' },
  requires: { type: 'string', description: 'Supported image formats and protocols: { fmt: [qcow2], proto: [file] }.' },
  steps: { type: 'string', required: true, description: 'The test body, run in order.' },
} as const satisfies Record<string, FieldSpec>;

export const REQUIRES_FIELDS = ['fmt', 'proto'] as const;

/** The variables a scenario may use; STATUS only inside exit_status messages. */
export const SCENARIO_VARIABLES = ['TEST_DIR', 'TEST_IMG', 'IMGFMT', 'IMGPROTO'] as const;
export const STATUS_VARIABLE = 'STATUS';
