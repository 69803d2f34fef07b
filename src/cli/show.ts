/** `qtest show ID`: the scenario rendered as the equivalent iotests bash script. */
import { loadFilterDir } from '../filters/load.ts';
import { ValidationError } from '../scenario/location.ts';
import { renderBash } from '../scenario/render-bash.ts';
import { SelectionError, loadScenarios, projectPaths, selectIds } from '../runner/project.ts';
import { UsageError, parseCommandLine } from './args.ts';

const USAGE = 'Usage: qtest show ID\n\nPrints scenarios/ID.yaml as the iotests bash it stands for.\n';

export default async function show(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv, { help: { type: 'boolean', short: 'h' } });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`qtest show: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (parsed.values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    process.stderr.write(`qtest show: expected exactly one scenario ID\n${USAGE}`);
    return 2;
  }
  const paths = projectPaths();
  try {
    const filters = loadFilterDir(paths.filtersDir);
    const ids = selectIds(parsed.positionals, paths.scenariosDir);
    const scenarios = loadScenarios(ids, paths.scenariosDir, new Set(filters.keys()));
    process.stdout.write(scenarios.map(renderBash).join('\n'));
    return 0;
  } catch (err) {
    if (err instanceof ValidationError || err instanceof SelectionError) {
      process.stderr.write(`qtest show: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
