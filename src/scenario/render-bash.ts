/**
 * A scenario as the iotests bash it stands for, for review (`qtest show`). Scenario variables use
 * bash syntax already, so strings go in double quotes with everything but `$VAR` escaped.
 */
import { STEP_SPECS } from './spec.ts';
import type { Scenario, Step } from './types.ts';
import { scanVariables } from './vars.ts';

/** A word as bash would need it quoted to mean the same, variables still expanding. */
export function bashWord(text: string): string {
  if (text !== '' && /^[A-Za-z0-9_.,:=/+@%-]+$/.test(text)) return text;
  const { refs } = scanVariables(text);
  if (refs.length === 0 && !text.includes("'")) return `'${text.replace(/\$\$/g, '$')}'`;
  let out = '"';
  let i = 0;
  for (const ref of refs) {
    out += escapeDouble(text.slice(i, ref.index));
    out += text.slice(ref.index, ref.index + ref.length);
    i = ref.index + ref.length;
  }
  return `${out}${escapeDouble(text.slice(i))}"`;
}

function escapeDouble(text: string): string {
  return text.replace(/\$\$/g, '$').replace(/[\\"`$]/g, '\\$&');
}

function pipeline(command: string, filters: readonly string[], stderr: 'merged' | 'direct'): string {
  if (filters.length === 0) return command;
  return `${command}${stderr === 'merged' ? ' 2>&1' : ''} | ${filters.map((f) => `_filter_${f}`).join(' | ')}`;
}

function withImage(image: string, command: string): string {
  return image === '$TEST_IMG' ? command : `TEST_IMG=${bashWord(image)} ${command}`;
}

function renderStep(step: Step, captureStatus: boolean): string[] {
  switch (step.kind) {
    case 'section':
      return ['echo', `echo ${bashWord(`=== ${step.title} ===`)}`, ...(step.blankAfter ? ['echo'] : [])];
    case 'subsection':
      return ['echo', `echo ${bashWord(`--- ${step.title} ---`)}`];
    case 'echo':
      if (step.text === '' && step.newline) return ['echo'];
      return [`echo ${step.newline ? '' : '-n '}${bashWord(step.text)}`];
    case 'make_test_img': {
      const opts = step.opts !== undefined ? `-o ${bashWord(step.opts)} ` : '';
      return [withImage(step.image, `_make_test_img ${opts}${bashWord(step.size)}`)];
    }
    case 'check_test_img':
      return [withImage(step.image, ['_check_test_img', ...step.args.map(bashWord)].join(' '))];
    case 'qemu-img':
    case 'qemu-io': {
      const program = step.kind === 'qemu-img' ? '$QEMU_IMG' : '$QEMU_IO';
      const lines = [pipeline([program, ...step.args.map(bashWord)].join(' '), step.filters, step.stderr)];
      if (captureStatus) lines.push('result=${PIPESTATUS[0]}');
      return lines;
    }
    case 'exit_status': {
      const lines = ['case $result in'];
      const message = (m: string): string => bashWord(m.replace(/\$STATUS\b|\$\{STATUS\}/g, '$result'));
      for (const [status, m] of step.cases) lines.push(`    ${status})`, `        echo ${message(m)}`, '        ;;');
      if (step.default !== undefined) lines.push('    *)', `        echo ${message(step.default)}`, '        ;;');
      lines.push('esac');
      return lines;
    }
    case 'truncate':
      return [`truncate -s ${step.size} ${bashWord(step.file)}`];
    case 'touch':
      return [`touch ${bashWord(step.file)}`];
    case 'file_size':
      return [`du -b ${bashWord(step.file)} | cut -f1`];
    case 'rm':
      return [`rm -f ${bashWord(step.file)}`];
    case 'qmp': {
      const lines = ['_launch_qemu \\'];
      for (let i = 0; i < step.launch.length; i += 2) {
        const pair = step.launch.slice(i, i + 2).map(bashWord).join(' ');
        lines.push(`    ${pair}${i + 2 < step.launch.length ? ' \\' : ''}`);
      }
      lines.push('');
      for (const ex of step.exchange) {
        // Continuation lines stay as written: the command text is echoed verbatim.
        lines.push(`_send_qemu_cmd $QEMU_HANDLE \\`, `    ${bashWord(ex.send)} \\`, `    ${bashWord(ex.until ?? '')}`, '');
      }
      lines.push('_cleanup_qemu');
      return lines;
    }
  }
}

export function renderBash(scenario: Scenario): string {
  const usesQmp = scenario.steps.some((s) => s.kind === 'qmp');
  const head = [
    '#!/usr/bin/env bash',
    ...(scenario.groups.length > 0 ? [`# group: ${scenario.groups.join(' ')}`] : []),
    '#',
    `# ${scenario.title}`,
    '#',
    `# Rendered by \`qtest show ${scenario.id}\` from the scenario; for review, not for running.`,
    '',
    'seq=$(basename $0)',
    'echo "QA output created by $seq"',
    '',
    'status=1\t# failure is the default!',
    '',
    '. ./common.rc',
    '. ./common.filter',
    ...(usesQmp ? ['. ./common.qemu'] : []),
    '',
    ...(scenario.requires.fmt ? [`_supported_fmt ${scenario.requires.fmt.join(' ')}`] : []),
    ...(scenario.requires.proto ? [`_supported_proto ${scenario.requires.proto.join(' ')}`] : []),
  ];
  // Only the tool step whose status an exit_status step reads gets `result=${PIPESTATUS[0]}`.
  const capture = new Set<number>();
  let lastTool = -1;
  scenario.steps.forEach((step, i) => {
    if (step.kind === 'exit_status' && lastTool >= 0) capture.add(lastTool);
    if (step.kind === 'qemu-img' || step.kind === 'qemu-io') lastTool = i;
  });
  const body: string[] = [];
  scenario.steps.forEach((step, i) => {
    // Blank lines between step groups, as iotests separate their paragraphs.
    if (step.kind === 'section' || step.kind === 'subsection' || step.kind === 'qmp') body.push('');
    body.push(...renderStep(step, capture.has(i)));
  });
  return `${[...head, ...body, '', '# success, all done', 'echo "*** done"', 'rm -f $seq.full', 'status=0'].join('\n')}\n`;
}

/** One line per step kind, for help texts. */
export function stepKindSummary(): string {
  return Object.entries(STEP_SPECS)
    .map(([kind, spec]) => `  ${kind.padEnd(15)} ${spec.bash}`)
    .join('\n');
}
