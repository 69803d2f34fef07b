/**
 * The fuzz report: a summary for the terminal and a Markdown + JSON record in fuzz/results/
 * (gitignored) that lists every finding with its recipe, so each can be replayed with
 * `npm run fuzz -- --seed S --replay INDEX`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CampaignResult, Finding } from './campaign.ts';
import type { CrashCampaignResult } from './crash/campaign.ts';

function pct(n: number, d: number): string {
  return d === 0 ? 'n/a' : `${((100 * n) / d).toFixed(2)} %`;
}

function firstLines(text: string, n = 4): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, n)
    .join(' | ');
}

export function summarizeImageFuzz(r: CampaignResult): string {
  const s = r.stats;
  const lines = [
    `image fuzzing: ${s.mutants} mutants of ${r.seeds.length} seeds, run seed ${r.options.seed}, ${(s.elapsedMs / 1000).toFixed(1)} s`,
    `  crashes ${s.crashes}, hangs ${s.hangs} (> ${r.options.hangMs} ms), memory blow-ups ${s.memory} (> ${r.options.memoryMiB} MiB), worker deaths ${s.died}`,
    `  slowest mutant ${s.slowest ? `#${s.slowest.index} ${s.slowest.wallMs.toFixed(0)} ms wall / ${s.slowest.cpuMs.toFixed(0)} ms CPU` : '-'}, most CPU ${s.maxCpuMs.toFixed(0)} ms, peak worker RSS ${s.maxRssMiB.toFixed(0)} MiB`,
  ];
  if (r.qemuAvailable && r.options.qemu) {
    lines.push(`  check verdict equal to qemu-img check: ${s.agreed}/${s.compared} (${pct(s.agreed, s.compared)}), qemu-img timeouts ${s.qemuTimeouts}`);
    lines.push(`  check text (stdout and stderr) identical to qemu-img check's: ${s.textAgreed}/${s.compared} (${pct(s.textAgreed, s.compared)})`);
  } else {
    lines.push('  qemu-img not available: verdicts not compared');
  }
  if (s.writesJudged) lines.push(`  writes to clean/leaky mutants judged by qemu-img check afterwards: ${s.writesJudged}, left corrupt: ${s.writeCorruptedImage}`);
  if (s.writeMadeCorrupt) lines.push(`  write phase left a copy corrupt (qtest's own check) that was not before: ${s.writeMadeCorrupt}`);
  if (!r.companionsIntact) lines.push('  SEED COMPANION FILES WERE MODIFIED (backing/data files must only be read)');
  const disagreements = r.findings.filter((f) => f.outcome === 'ok');
  const failures = r.findings.filter((f) => f.outcome !== 'ok');
  for (const f of failures.slice(0, 20)) lines.push(`  ${f.outcome.toUpperCase()} #${f.index} ${f.seed}: ${f.recipe.mutations.join('; ')}${f.detail ? ` -- ${f.detail}` : ''}`);
  if (disagreements.length) lines.push(`  ${disagreements.length} verdict disagreement(s), listed in the report`);
  return lines.join('\n');
}

function matrixTable(r: CampaignResult): string {
  const classes = ['clean', 'leaks', 'corrupt', 'cannot-open', 'unsupported', 'other'];
  const rows = ['| qtest \\ QEMU | ' + classes.join(' | ') + ' |', '|' + ' --- |'.repeat(classes.length + 1)];
  for (const b of classes) {
    const row = r.stats.matrix[b];
    if (!row) continue;
    rows.push(`| ${b} | ${classes.map((q) => row[q] ?? 0).join(' | ')} |`);
  }
  return rows.join('\n');
}

function findingMarkdown(f: Finding): string {
  const out = [`### #${f.index} ${f.outcome} (${f.seed}, item seed ${f.itemSeed})`, '', ...f.recipe.mutations.map((m) => `- ${m}`), ''];
  if (f.detail) out.push(`Detail: ${f.detail}`, '');
  if (f.builtin || f.qemu) {
    out.push(`- qtest check: ${f.builtin?.verdict ?? '-'} (exit ${f.builtin?.exit ?? '-'}): ${firstLines(f.builtin?.output ?? '')}`);
    out.push(`- qemu-img check: ${f.qemu?.verdict ?? '-'} (exit ${f.qemu?.exit ?? '-'}): ${firstLines(f.qemu?.output ?? '')}`);
    out.push('');
  }
  for (const c of f.crashes ?? []) out.push('```', `${c.op}: ${c.stack || c.error}`, '```', '');
  out.push(`Patches: \`${JSON.stringify(f.recipe.patches).slice(0, 600)}\` length ${f.recipe.length}`, '');
  return out.join('\n');
}

export function imageFuzzMarkdown(r: CampaignResult): string {
  const s = r.stats;
  const out = [
    `# Image fuzzing, run seed ${r.options.seed}`,
    '',
    `${s.mutants} mutants, ${(s.elapsedMs / 1000).toFixed(1)} s, ${r.options.workers} workers. Seeds: ${r.seeds.map((x) => x.id).join(', ')}.`,
    '',
    `| crashes | hangs | memory | worker deaths | verdict agreement | slowest (wall/CPU) | peak RSS |`,
    `| --- | --- | --- | --- | --- | --- | --- |`,
    `| ${s.crashes} | ${s.hangs} | ${s.memory} | ${s.died} | ${s.agreed}/${s.compared} (${pct(s.agreed, s.compared)}) | ${s.maxWallMs.toFixed(0)}/${s.maxCpuMs.toFixed(0)} ms | ${s.maxRssMiB.toFixed(0)} MiB |`,
    '',
    '## Verdicts (rows: qtest, columns: QEMU)',
    '',
    matrixTable(r),
    '',
    `Typed errors by operation: ${Object.entries(s.typedErrors)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    '',
    `## Check text (stdout and stderr identical to QEMU's: ${s.textAgreed}/${s.compared}, ${pct(s.textAgreed, s.compared)})`,
    '',
    ...(s.textDiffers.length ? ['First line where the texts part, for the first mutants that differ:', ''] : []),
    ...s.textDiffers.map((d) => `- #${d.index} (${d.seed}) ${d.stream}: QEMU \`${d.qemu.slice(0, 200)}\`, qtest \`${d.qtest.slice(0, 200)}\``),
    '',
    '## What QEMU said (first line of qemu-img check, numbers masked)',
    '',
    ...Object.entries(s.qemuFirstLines)
      .sort((a, b) => b[1] - a[1])
      .map(([line, n]) => `- ${n} × \`${line}\``),
    '',
    `## Findings (${r.findings.length})`,
    '',
    ...r.findings.map(findingMarkdown),
  ];
  return out.join('\n');
}

export function summarizeCrashTrials(r: CrashCampaignResult): string {
  const fmt = (o: Record<string, number>): string =>
    Object.entries(o)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  const lines = [
    `crash consistency: ${r.trials.length} trials, run seed ${r.options.seed}, judged by ${r.options.judge}, ${(r.elapsedMs / 1000).toFixed(1)} s`,
    `  modes: ${fmt(r.byMode)}; ends: ${fmt(r.byEnd)}`,
    `  acknowledged flushes ${r.flushes}, acknowledged operations verified ${r.verifiedWrites}, snapshots verified ${r.snapshotsVerified}`,
    `  corrupt after the crash ${r.corrupt}, leaks after the crash ${r.leaky} (all repaired: ${r.leaksRepaired ? 'yes' : 'NO'}), lost or wrong data ${r.lost}, trials with problems ${r.failed}`,
    `  killed inside snapshot creation with only COPIED-flag errors (as QEMU; repaired by -r all): ${r.copiedWindow}`,
  ];
  for (const t of r.trials.filter((x) => x.problems.length).slice(0, 20)) lines.push(`  FAIL trial ${t.index} (${t.mode}, cluster ${t.clusterSize}, seed ${t.seed}, ${t.end} after op ${t.started}, acked ${t.acked}): ${t.problems.slice(0, 3).join('; ')}`);
  return lines.join('\n');
}

export function writeResults(dir: string, name: string, files: Record<string, string>): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [ext, text] of Object.entries(files)) {
    const file = path.join(dir, `${name}.${ext}`);
    fs.writeFileSync(file, text);
    written.push(file);
  }
  return written;
}
