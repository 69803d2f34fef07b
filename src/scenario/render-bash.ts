/**
 * A scenario as the iotests bash it stands for, for review (`qtest show`). Scenario variables use
 * bash syntax already, so strings go in double quotes with everything but expansions escaped.
 */
import type { FilterRef } from '../filters/apply.ts';
import type { FilterRule } from '../filters/types.ts';
import { STEP_SPECS } from './spec.ts';
import type { Condition, Scenario, Step } from './types.ts';
import { scanVariables } from './vars.ts';

/** A word as bash would need it quoted to mean the same, variables still expanding. */
export function bashWord(text: string): string {
  if (text !== '' && /^[A-Za-z0-9_.,:=/+@%-]+$/.test(text)) return text;
  if (!text.includes('$') && !text.includes("'")) return `'${text}'`;
  // Expansions ($VAR, $((..)), $(seq ..)) stay live inside double quotes; everything else is escaped.
  const spans = expansionSpans(text);
  if (spans.length === 0 && !text.includes("'")) return `'${text.replace(/\$\$/g, '$')}'`;
  let out = '"';
  let i = 0;
  for (const [start, end] of spans) {
    out += escapeDouble(text.slice(i, start));
    out += text.slice(start, end);
    i = end;
  }
  return `${out}${escapeDouble(text.slice(i))}"`;
}

/** [start, end) of every top-level expansion in a text. */
function expansionSpans(text: string): [number, number][] {
  const spans: [number, number][] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '$') continue;
    const next = text[i + 1];
    if (next === '$') {
      i++;
      continue;
    }
    if (next === '(') {
      let depth = 0;
      let j = i + 1;
      for (; j < text.length; j++) {
        if (text[j] === '(') depth++;
        else if (text[j] === ')' && --depth === 0) break;
      }
      spans.push([i, Math.min(j + 1, text.length)]);
      i = j;
      continue;
    }
    const { refs } = scanVariables(text.slice(i));
    const first = refs[0];
    if (first && first.index === 0) {
      spans.push([i, i + first.length]);
      i += first.length - 1;
    }
  }
  return spans;
}

function escapeDouble(text: string): string {
  return text.replace(/\$\$/g, '$').replace(/[\\"`$]/g, '\\$&');
}

function sq(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function ruleCommand(rule: FilterRule): string {
  const pattern = (p: { text: string } | { regex: string }): string => ('text' in p ? p.text : p.regex);
  switch (rule.kind) {
    case 'replace':
      return `sed -e ${sq(`s#${pattern(rule.pattern)}#${rule.with}#${rule.global ? 'g' : ''}`)}`;
    case 'delete':
      return `sed -e ${sq(`/${pattern(rule.pattern)}/d`)}`;
    case 'grep':
      return `grep${rule.invert ? ' -v' : ''}${rule.after > 0 ? ` -A ${rule.after}` : ''} ${sq(pattern(rule.pattern))}`;
    case 'tr':
      return `tr ${sq(JSON.stringify(rule.from).slice(1, -1))} ${sq(JSON.stringify(rule.to).slice(1, -1))}`;
    default:
      return `_filter_${rule.kind}`;
  }
}

function filterCommand(ref: FilterRef): string {
  return typeof ref === 'string' ? `_filter_${ref}` : ref.rules.map(ruleCommand).join(' | ');
}

function pipeline(command: string, filters: readonly FilterRef[], stderr: 'merged' | 'direct'): string {
  if (filters.length === 0) return command;
  return `${command}${stderr === 'merged' ? ' 2>&1' : ''} | ${filters.map(filterCommand).join(' | ')}`;
}

function withImage(image: string, command: string): string {
  return image === '$TEST_IMG' ? command : `TEST_IMG=${bashWord(image)} ${command}`;
}

function condition(c: Condition): string {
  if (c.kind === 'arith') return `(( ${c.expr} ))`;
  return `[ ${bashWord(c.left)} ${c.kind === 'equal' ? '=' : '!='} ${bashWord(c.right)} ]`;
}

function indent(lines: string[]): string[] {
  return lines.map((l) => (l === '' ? l : `    ${l}`));
}

function capture(into: string | undefined, command: string): string {
  return into !== undefined ? `${into}=$(${command})` : command;
}

function renderStep(step: Step, captureStatus: boolean): string[] {
  switch (step.kind) {
    case 'section':
      return ['echo', `echo ${bashWord(`=== ${step.title} ===`)}`, ...(step.blankAfter ? ['echo'] : [])];
    case 'subsection':
      return ['echo', `echo ${bashWord(`--- ${step.title} ---`)}`];
    case 'echo': {
      const cmd = step.text === '' && step.newline ? 'echo' : `echo ${step.newline ? '' : '-n '}${bashWord(step.text)}`;
      return [capture(step.into, pipeline(cmd, step.filters, 'direct'))];
    }
    case 'printf': {
      // printf interprets backslash escapes itself, so a YAML-decoded newline is shown as \n.
      const format = step.format.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
      return [`printf ${step.into !== undefined ? `-v ${step.into} ` : ''}${[format, ...step.args].map(bashWord).join(' ')}`];
    }
    case 'set':
      return step.assignments.map((a) => `${a.name}=${bashWord(a.value)}`);
    case 'make_test_img': {
      const env = [
        ...(step.image !== '$TEST_IMG' ? [`TEST_IMG=${bashWord(step.image)}`] : []),
        ...(step.clusterSize !== undefined ? [`CLUSTER_SIZE=${bashWord(step.clusterSize)}`] : []),
        ...(step.imgopts !== undefined ? [`IMGOPTS=${bashWord(step.imgopts)}`] : []),
        ...(step.fmt !== undefined ? [`IMGFMT=${bashWord(step.fmt)}`] : []),
      ];
      const args = [
        ...(step.backing !== undefined ? ['-b', bashWord(step.backing)] : []),
        ...(step.backingFmt !== undefined ? ['-F', bashWord(step.backingFmt)] : []),
        ...(step.opts !== undefined ? ['-o', bashWord(step.opts)] : []),
        ...step.args.map(bashWord),
        ...(step.size !== undefined ? [bashWord(step.size)] : []),
      ];
      return [[...env, '_make_test_img', ...args].join(' ')];
    }
    case 'check_test_img':
      return [withImage(step.image, pipeline(['_check_test_img', ...step.args.map(bashWord)].join(' '), step.filters, 'direct'))];
    case 'img_info':
      return [withImage(step.image, pipeline(['_img_info', ...(step.formatSpecific ? ['--format-specific'] : []), ...step.args.map(bashWord)].join(' '), step.filters, 'direct'))];
    case 'qemu-img':
    case 'qemu-io': {
      const program = step.kind === 'qemu-img' ? '$QEMU_IMG' : step.noFmt ? 'QEMU_IO_OPTIONS=$QEMU_IO_OPTIONS_NO_FMT $QEMU_IO' : '$QEMU_IO';
      let cmd = pipeline([program, ...step.args.map(bashWord)].join(' '), step.filters, step.stderr);
      if (step.stdout === 'discard') cmd = `${cmd} >/dev/null`;
      const lines = step.stdin !== undefined ? [`${capture(step.into, cmd)} <<EOF`, ...step.stdin.replace(/\n$/, '').split('\n'), 'EOF'] : [capture(step.into, cmd)];
      if (captureStatus) lines.push('result=${PIPESTATUS[0]}');
      return lines;
    }
    case 'io_pattern':
      return [withImage(step.image, ['io_pattern', step.op, step.start, step.size, step.step, step.count, step.pattern].map(bashWord).join(' '))];
    case 'exit_status': {
      const lines = ['case $result in'];
      const message = (m: string): string => bashWord(m.replace(/\$STATUS\b|\$\{STATUS\}/g, '$result'));
      for (const [status, m] of step.cases) lines.push(`    ${status})`, `        echo ${message(m)}`, '        ;;');
      if (step.default !== undefined) lines.push('    *)', `        echo ${message(step.default)}`, '        ;;');
      lines.push('esac');
      return lines;
    }
    case 'truncate':
      return [`truncate -s ${bashWord(step.size)} ${bashWord(step.file)}`];
    case 'touch':
      return [`touch ${bashWord(step.file)}`];
    case 'mkdir':
      return [`mkdir ${bashWord(step.file)}`];
    case 'file_size':
      return [capture(step.into, `du ${step.allocated ? '-B1' : '-b'} ${bashWord(step.file)} | cut -f1`)];
    case 'rm':
      return [`rm -f ${bashWord(step.file)}`];
    case 'poke_file':
      return [`poke_file ${bashWord(step.file)} ${bashWord(step.offset)} ${sq(step.data)}`];
    case 'poke_file_be':
    case 'poke_file_le':
      return [`${step.kind} ${[step.file, step.offset, step.size, step.value].map(bashWord).join(' ')}`];
    case 'peek_file_be':
    case 'peek_file_le':
    case 'peek_file_raw':
      return [capture(step.into, `${step.kind} ${[step.file, step.offset, step.size].map(bashWord).join(' ')}`)];
    case 'qcow2':
      return [pipeline(['$PYTHON qcow2.py', bashWord(step.image), ...step.args.map(bashWord)].join(' '), step.filters, 'direct')];
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
    case 'if':
      return [`if ${condition(step.condition)}; then`, ...indent(renderSteps(step.then)), ...(step.else.length > 0 ? ['else', ...indent(renderSteps(step.else))] : []), 'fi'];
    case 'foreach': {
      const values = typeof step.values === 'string' ? step.values.replace(/^"|"$/g, '') : step.values.map(bashWord).join(' ');
      return [`for ${step.var} in ${values}; do`, ...indent(renderSteps(step.steps)), 'done'];
    }
    case 'while':
      return [`while ${condition(step.condition)}; do`, ...indent(renderSteps(step.steps)), 'done'];
    case 'call':
      return [[step.macro, ...step.args.map((a) => `${a.name}=${bashWord(a.value)}`)].join(' ')];
  }
}

function renderSteps(steps: readonly Step[]): string[] {
  // Only the tool step whose status an exit_status step reads gets `result=${PIPESTATUS[0]}`.
  const captureAt = new Set<number>();
  let lastTool = -1;
  steps.forEach((step, i) => {
    if (step.kind === 'exit_status' && lastTool >= 0) captureAt.add(lastTool);
    if (step.kind === 'qemu-img' || step.kind === 'qemu-io') lastTool = i;
  });
  const body: string[] = [];
  steps.forEach((step, i) => {
    // Blank lines between step groups, as iotests separate their paragraphs.
    if (step.kind === 'section' || step.kind === 'subsection' || step.kind === 'qmp') body.push('');
    body.push(...renderStep(step, captureAt.has(i)));
  });
  return body;
}

export function renderBash(scenario: Scenario): string {
  const usesQmp = JSON.stringify([...scenario.steps]).includes('"kind":"qmp"');
  const usesPattern = JSON.stringify([...scenario.steps, ...[...scenario.macros.values()].map((m) => m.steps)]).includes('"kind":"io_pattern"');
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
    ...(usesPattern ? ['. ./common.pattern'] : []),
    ...(usesQmp ? ['. ./common.qemu'] : []),
    '',
    ...(scenario.requires.fmt ? [`_supported_fmt ${scenario.requires.fmt.join(' ')}`] : []),
    ...(scenario.requires.proto ? [`_supported_proto ${scenario.requires.proto.join(' ')}`] : []),
  ];
  const macros: string[] = [];
  for (const m of scenario.macros.values()) {
    const params = m.params.map((p) => (p.default !== undefined ? `${p.name}=${bashWord(p.default)}` : p.name));
    macros.push('', `# params: ${params.join(' ') || '(none)'}`, `${m.name}()`, '{', ...indent(renderSteps(m.steps)), '}');
  }
  return `${[...head, ...macros, ...renderSteps(scenario.steps), '', '# success, all done', 'echo "*** done"', 'rm -f $seq.full', 'status=0'].join('\n')}\n`;
}

/** One line per step kind, for help texts. */
export function stepKindSummary(): string {
  return Object.entries(STEP_SPECS)
    .map(([kind, spec]) => `  ${kind.padEnd(15)} ${spec.bash}`)
    .join('\n');
}
