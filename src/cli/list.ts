/** `qtest list [ID|glob ...] [-g G] [-x G]`: the scenarios with their groups and titles. */
import { loadFilterDir } from '../filters/load.ts';
import { ValidationError } from '../scenario/location.ts';
import { SelectionError, loadScenarios, projectPaths, selectIds } from '../runner/project.ts';
import { UsageError, parseCommandLine, splitList } from './args.ts';

const USAGE = `Usage: qtest list [options] [ID|glob ...]

Options:
  -g, --group G           only scenarios in group G
  -x, --exclude-group G   leave out scenarios in group G
  --json                  print JSON instead of a table
`;

export default async function list(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv, {
      group: { type: 'string', short: 'g', multiple: true },
      'exclude-group': { type: 'string', short: 'x', multiple: true },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`qtest list: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const include = splitList(values.group);
  const exclude = splitList(values['exclude-group']);
  const paths = projectPaths();
  let scenarios;
  try {
    const filters = loadFilterDir(paths.filtersDir);
    scenarios = loadScenarios(selectIds(positionals, paths.scenariosDir), paths.scenariosDir, new Set(filters.keys()));
  } catch (err) {
    if (err instanceof ValidationError || err instanceof SelectionError) {
      process.stderr.write(`qtest list: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  scenarios = scenarios.filter((s) => (include.length === 0 || s.groups.some((g) => include.includes(g))) && !s.groups.some((g) => exclude.includes(g)));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(scenarios.map((s) => ({ id: s.id, title: s.title, groups: s.groups, requires: s.requires, steps: s.steps.length })), null, 2)}\n`);
    return 0;
  }
  const idWidth = Math.max(2, ...scenarios.map((s) => s.id.length));
  const groupWidth = Math.max(6, ...scenarios.map((s) => s.groups.join(',').length));
  for (const s of scenarios) process.stdout.write(`${s.id.padEnd(idWidth)}  ${s.groups.join(',').padEnd(groupWidth)}  ${s.title}\n`);
  return 0;
}
