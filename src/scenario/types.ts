/**
 * A validated scenario. Strings are kept unexpanded (TEST_DIR differs per run, variables change
 * while it runs); each step keeps its source position so run-time problems can point back at
 * the YAML.
 */
import type { FilterRef } from '../filters/apply.ts';
import type { SourcePos } from './location.ts';

export type StreamMode = 'merged' | 'direct';
export type StdoutMode = 'show' | 'discard';

interface StepBase {
  at: SourcePos;
}

export interface SectionStep extends StepBase {
  kind: 'section';
  title: string;
  blankAfter: boolean;
}

export interface SubsectionStep extends StepBase {
  kind: 'subsection';
  title: string;
}

export interface EchoStep extends StepBase {
  kind: 'echo';
  text: string;
  newline: boolean;
  filters: FilterRef[];
  into?: string;
}

export interface PrintfStep extends StepBase {
  kind: 'printf';
  format: string;
  args: string[];
  into?: string;
}

export interface Assignment {
  name: string;
  value: string;
  at: SourcePos;
}

export interface SetStep extends StepBase {
  kind: 'set';
  assignments: Assignment[];
}

export interface MakeTestImgStep extends StepBase {
  kind: 'make_test_img';
  size?: string;
  opts?: string;
  image: string;
  backing?: string;
  backingFmt?: string;
  fmt?: string;
  clusterSize?: string;
  imgopts?: string;
  args: string[];
}

export interface CheckTestImgStep extends StepBase {
  kind: 'check_test_img';
  args: string[];
  image: string;
  filters: FilterRef[];
}

export interface ImgInfoStep extends StepBase {
  kind: 'img_info';
  args: string[];
  image: string;
  formatSpecific: boolean;
  filters: FilterRef[];
}

export interface ToolStep extends StepBase {
  kind: 'qemu-img' | 'qemu-io';
  args: string[];
  filters: FilterRef[];
  stderr: StreamMode;
  stdout: StdoutMode;
  stdin?: string;
  into?: string;
  /** qemu-io only: leave out `-f $IMGFMT`. */
  noFmt: boolean;
  /** Extra attempts while the exit status is not 0. */
  retries: number;
}

export interface IoPatternStep extends StepBase {
  kind: 'io_pattern';
  op: string;
  start: string;
  size: string;
  step: string;
  count: string;
  pattern: string;
  image: string;
}

export interface ExitStatusStep extends StepBase {
  kind: 'exit_status';
  cases: Map<number, string>;
  default?: string;
}

export interface TruncateStep extends StepBase {
  kind: 'truncate';
  file: string;
  size: string;
}

export interface FileStep extends StepBase {
  kind: 'touch' | 'rm' | 'mkdir';
  file: string;
}

export interface FileSizeStep extends StepBase {
  kind: 'file_size';
  file: string;
  allocated: boolean;
  into?: string;
}

export interface PokeStep extends StepBase {
  kind: 'poke_file';
  file: string;
  offset: string;
  data: string;
}

export interface PokeIntStep extends StepBase {
  kind: 'poke_file_be' | 'poke_file_le';
  file: string;
  offset: string;
  size: string;
  value: string;
}

export interface PeekStep extends StepBase {
  kind: 'peek_file_be' | 'peek_file_le' | 'peek_file_raw';
  file: string;
  offset: string;
  size: string;
  into?: string;
}

export interface Qcow2Step extends StepBase {
  kind: 'qcow2';
  args: string[];
  image: string;
  filters: FilterRef[];
}

export interface QmpExchange {
  at: SourcePos;
  send: string;
  until?: string;
  timeoutSeconds: number;
}

export interface QmpStep extends StepBase {
  kind: 'qmp';
  launch: string[];
  exchange: QmpExchange[];
}

export type Condition = { kind: 'arith'; expr: string } | { kind: 'equal' | 'not_equal'; left: string; right: string };

export interface IfStep extends StepBase {
  kind: 'if';
  condition: Condition;
  then: Step[];
  else: Step[];
}

export interface ForeachStep extends StepBase {
  kind: 'foreach';
  var: string;
  /** A list of values, or one text split into words when run. */
  values: string[] | string;
  steps: Step[];
}

export interface WhileStep extends StepBase {
  kind: 'while';
  condition: Condition;
  steps: Step[];
  max: number;
}

export interface CallStep extends StepBase {
  kind: 'call';
  macro: string;
  args: Assignment[];
}

export type Step =
  | SectionStep
  | SubsectionStep
  | EchoStep
  | PrintfStep
  | SetStep
  | MakeTestImgStep
  | CheckTestImgStep
  | ImgInfoStep
  | ToolStep
  | IoPatternStep
  | ExitStatusStep
  | TruncateStep
  | FileStep
  | FileSizeStep
  | PokeStep
  | PokeIntStep
  | PeekStep
  | Qcow2Step
  | QmpStep
  | IfStep
  | ForeachStep
  | WhileStep
  | CallStep;

export interface MacroParam {
  name: string;
  /** Absent: the call must give it. */
  default?: string;
}

export interface Macro {
  name: string;
  params: MacroParam[];
  steps: Step[];
  at: SourcePos;
}

export interface Scenario {
  id: string;
  title: string;
  groups: string[];
  requires: { fmt?: string[]; proto?: string[]; features?: string[] };
  macros: Map<string, Macro>;
  steps: Step[];
  /** Absolute path of the YAML file. */
  file: string;
}
