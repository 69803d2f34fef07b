/**
 * `qtest` entry point: dispatches to a subcommand module, each of which exports
 * `default (argv) => Promise<exitCode>`. Modules load lazily so that the drop-in tools do not
 * pay for the runner's imports and vice versa.
 */
type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<{ default: Command }> }> = {
  run: { summary: 'run scenarios and compare with expected transcripts', load: () => import('./run.ts') },
  crosscheck: { summary: 'run scenarios on both backends and compare them with each other', load: () => import('./crosscheck.ts') },
  new: { summary: 'create a scenario skeleton', load: () => import('./new.ts') },
  list: { summary: 'list scenarios', load: () => import('./list.ts') },
  show: { summary: 'print a scenario as the equivalent iotests bash', load: () => import('./show.ts') },
  'qemu-img': { summary: 'the built-in engine as a drop-in qemu-img', load: () => import('./qemu-img.ts') },
  'qemu-io': { summary: 'the built-in engine as a drop-in qemu-io', load: () => import('./qemu-io.ts') },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: qtest <command> [args...]\n\nCommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`qtest: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  try {
    const mod = await command.load();
    return await mod.default(rest);
  } catch (err) {
    // Internal failures are reported in one line; QTEST_DEBUG=1 shows the stack for developers.
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`qtest ${name}: internal error: ${message}\n`);
    if (process.env.QTEST_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return 2;
  }
}
