/** Machine-readable run reports: JSON, JUnit XML and TAP 13. */
import type { RunSummary, ScenarioResult } from './results.ts';
import { countByStatus } from './results.ts';

export type ReporterName = 'json' | 'junit' | 'tap';
export const REPORTERS: readonly ReporterName[] = ['json', 'junit', 'tap'];

export function renderReport(name: ReporterName, summary: RunSummary): string {
  switch (name) {
    case 'json':
      return renderJson(summary);
    case 'junit':
      return renderJunit(summary);
    case 'tap':
      return renderTap(summary);
  }
}

function renderJson(summary: RunSummary): string {
  const counts = countByStatus(summary.results);
  return `${JSON.stringify(
    {
      backend: summary.backend,
      qemuVersion: summary.qemuVersion,
      durationMs: summary.durationMs,
      counts: { passed: counts.pass, failed: counts.fail, errored: counts.error, skipped: counts.skip },
      results: summary.results,
    },
    null,
    2,
  )}\n`;
}

function xml(text: string): string {
  return text
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function renderJunit(summary: RunSummary): string {
  const c = countByStatus(summary.results);
  const cases = summary.results.map((r) => {
    const open = `    <testcase classname="qtest.${xml(summary.backend)}" name="${xml(r.id)}" time="${seconds(r.durationMs)}">`;
    const body = junitBody(r);
    return body ? `${open}\n${body}\n    </testcase>` : `${open}</testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites tests="${summary.results.length}" failures="${c.fail}" errors="${c.error}" skipped="${c.skip}" time="${seconds(summary.durationMs)}">`,
    `  <testsuite name="qtest (${xml(summary.backend)}, QEMU ${xml(summary.qemuVersion)})" tests="${summary.results.length}" failures="${c.fail}" errors="${c.error}" skipped="${c.skip}" time="${seconds(summary.durationMs)}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

function junitBody(r: ScenarioResult): string {
  const message = xml(r.message ?? '');
  switch (r.status) {
    case 'pass':
      return '';
    case 'skip':
      return `      <skipped message="${message}"/>`;
    case 'fail':
      return `      <failure message="${message}">${xml(r.diff ?? '')}</failure>`;
    case 'error':
      return `      <error message="${message}"/>`;
  }
}

function renderTap(summary: RunSummary): string {
  const lines = ['TAP version 13', `1..${summary.results.length}`];
  summary.results.forEach((r, i) => {
    const n = i + 1;
    const name = `${r.id} - ${r.title}`.replace(/#/g, '\\#');
    if (r.status === 'pass') lines.push(`ok ${n} ${name}`);
    else if (r.status === 'skip') lines.push(`ok ${n} ${name} # SKIP ${r.message ?? ''}`.trimEnd());
    else {
      lines.push(`not ok ${n} ${name}`);
      lines.push('  ---');
      lines.push(`  message: ${JSON.stringify(r.message ?? r.status)}`);
      lines.push(`  severity: ${r.status === 'error' ? 'error' : 'fail'}`);
      if (r.diff) {
        lines.push('  diff: |');
        for (const d of r.diff.split('\n')) lines.push(`    ${d}`);
      }
      lines.push('  ...');
    }
  });
  return `${lines.join('\n')}\n`;
}
