/** `qtest new ID --title TEXT`: a scenario skeleton to start porting or writing a test from. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { displayPath, projectPaths } from '../runner/project.ts';
import { UsageError, parseCommandLine, splitList } from './args.ts';

const USAGE = `Usage: qtest new ID --title TEXT [options]

Creates scenarios/ID.yaml with the usual header, groups and one step.

Options:
  --title TEXT        one line saying what the test covers (required)
  -g, --group G       groups (repeatable, comma-separated; default: rw,auto,quick)
  -h, --help          show this help
`;

/** A YAML scalar that reads back as the same text. */
function yamlText(text: string): string {
  return /^[A-Za-z0-9(][A-Za-z0-9 _.,()/+-]*$/.test(text) && !/^(true|false|null|yes|no|on|off|~)$/i.test(text) && !/ $/.test(text) ? text : JSON.stringify(text);
}

export function skeleton(id: string, title: string, groups: readonly string[]): string {
  return [
    '# yaml-language-server: $schema=../schema/scenario.schema.json',
    `# ${/^\d+$/.test(id) ? `QEMU iotest ${id} (tests/qemu-iotests/${id})` : `Scenario ${id}`}: ${title}.`,
    '# Ported from upstream revision <commit> (or: written for qtest; say which).',
    '#',
    '# Version differences: expected/' + id + '.out is recorded from QEMU 7.2; note here every way',
    "# other QEMU versions' output (the upstream .out) differs from it.",
    `id: ${/^\d+$/.test(id) ? id : yamlText(id)}`,
    `title: ${yamlText(title)}`,
    `groups: [${groups.join(', ')}]`,
    'requires:',
    '  fmt: [qcow2]',
    '  proto: [file]',
    '',
    'steps:',
    '  - make_test_img: 64M',
    '',
  ].join('\n');
}

export default async function newScenario(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv, { title: { type: 'string' }, group: { type: 'string', short: 'g', multiple: true }, help: { type: 'boolean', short: 'h' } });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`qtest new: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const bad = (message: string): number => {
    process.stderr.write(`qtest new: ${message}\n${USAGE}`);
    return 2;
  };
  if (positionals.length !== 1) return bad('expected exactly one scenario ID');
  const id = positionals[0]!;
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(id)) return bad(`'${id}' is not a usable scenario ID (letters, digits, _ and -)`);
  const title = values.title?.trim();
  if (!title) return bad('--title is required');
  if (/\n/.test(title)) return bad('the title is one line');
  const groups = splitList(values.group);
  for (const g of groups) if (!/^[A-Za-z0-9_-]+$/.test(g)) return bad(`'${g}' is not a usable group name`);

  const paths = projectPaths();
  const file = path.join(paths.scenariosDir, `${id}.yaml`);
  if (fs.existsSync(file)) {
    process.stderr.write(`qtest new: ${displayPath(file)} already exists\n`);
    return 2;
  }
  fs.mkdirSync(paths.scenariosDir, { recursive: true });
  fs.writeFileSync(file, skeleton(id, title, groups.length > 0 ? groups : ['rw', 'auto', 'quick']), { flag: 'wx' });
  process.stdout.write(
    [
      `created ${displayPath(file)}`,
      'next: write its steps (`qtest show ' + id + '` prints them as iotests bash), then',
      `  npx qtest run ${id} --backend qemu --accept   # record QEMU's transcript as expected/${id}.out`,
      `  npx qtest crosscheck ${id}                     # run it on both backends and compare`,
      '',
    ].join('\n'),
  );
  return 0;
}
