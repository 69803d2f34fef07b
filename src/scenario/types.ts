/**
 * A validated scenario. Strings are kept unexpanded (TEST_DIR differs per run); each step keeps
 * its source position so run-time problems can point back at the YAML.
 */
import type { SourcePos } from './location.ts';

export type StreamMode = 'merged' | 'direct';

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
}

export interface MakeTestImgStep extends StepBase {
  kind: 'make_test_img';
  size: string;
  opts?: string;
  image: string;
}

export interface CheckTestImgStep extends StepBase {
  kind: 'check_test_img';
  args: string[];
  image: string;
}

export interface ToolStep extends StepBase {
  kind: 'qemu-img' | 'qemu-io';
  args: string[];
  filters: string[];
  stderr: StreamMode;
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
  kind: 'touch' | 'file_size' | 'rm';
  file: string;
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

export type Step =
  | SectionStep
  | SubsectionStep
  | EchoStep
  | MakeTestImgStep
  | CheckTestImgStep
  | ToolStep
  | ExitStatusStep
  | TruncateStep
  | FileStep
  | QmpStep;

export interface Scenario {
  id: string;
  title: string;
  groups: string[];
  requires: { fmt?: string[]; proto?: string[] };
  steps: Step[];
  /** Absolute path of the YAML file. */
  file: string;
}
