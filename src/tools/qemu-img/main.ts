/**
 * qemu-img 7.2 on the built-in engine: the global options (-h, -V, -T), the subcommand table,
 * and the exit status. Each subcommand lives in its own module and returns its exit code or
 * throws ImgExit (QEMU's exit()).
 */
import type { ToolMain } from '../context.ts';
import { ImgExit, Img, errorMessage } from './img.ts';
import { imgAmend } from './cmd-amend.ts';
import { imgBench } from './cmd-bench.ts';
import { imgBitmap } from './cmd-bitmap.ts';
import { imgCheck } from './cmd-check.ts';
import { imgCommit } from './cmd-commit.ts';
import { imgCompare } from './cmd-compare.ts';
import { imgConvert } from './cmd-convert.ts';
import { imgCreate } from './cmd-create.ts';
import { imgDd } from './cmd-dd.ts';
import { imgInfo } from './cmd-info.ts';
import { imgMap } from './cmd-map.ts';
import { imgMeasure } from './cmd-measure.ts';
import { imgRebase } from './cmd-rebase.ts';
import { imgResize } from './cmd-resize.ts';
import { imgSnapshot } from './cmd-snapshot.ts';

export type Command = (img: Img, argv: string[]) => number;

/** qemu-img-cmds.h order. */
const commands: ReadonlyArray<[string, Command]> = [
  ['amend', imgAmend],
  ['bench', imgBench],
  ['bitmap', imgBitmap],
  ['check', imgCheck],
  ['commit', imgCommit],
  ['compare', imgCompare],
  ['convert', imgConvert],
  ['create', imgCreate],
  ['dd', imgDd],
  ['info', imgInfo],
  ['map', imgMap],
  ['measure', imgMeasure],
  ['snapshot', imgSnapshot],
  ['rebase', imgRebase],
  ['resize', imgResize],
];

function run(img: Img, args: string[]): number {
  if (args.length < 1) img.errorExit('Not enough arguments');
  const argv = ['qemu-img', ...args];
  const g = img.getopt(argv, '+:hVT:', [
    { name: 'help', hasArg: false, val: 'h' },
    { name: 'version', hasArg: false, val: 'V' },
    { name: 'trace', hasArg: true, val: 'T' },
  ]);
  for (;;) {
    const r = g.next();
    if (r.kind === 'end') break;
    if (r.kind === 'missing') img.errorExit(`missing argument for option '${g.previousArg()}'`);
    if (r.kind === 'unknown') img.errorExit(`unrecognized option '${g.previousArg()}'`);
    if (r.opt === 'h') img.help();
    if (r.opt === 'V') {
      img.version();
      return 0;
    }
    // -T: tracing is accepted and ignored (the built-in engine has no trace events).
  }
  const rest = g.argv.slice(g.optind);
  if (rest.length < 1) return 0;
  const name = rest[0]!;
  const cmd = commands.find(([n]) => n === name);
  if (!cmd) img.errorExit(`Command not found: ${name}`);
  return cmd[1](img, rest);
}

export const qemuImgMain: ToolMain = async (argv, ctx) => {
  const img = new Img(ctx);
  let code: number;
  try {
    code = run(img, argv);
  } catch (err) {
    if (err instanceof ImgExit) {
      code = err.code;
    } else {
      // Should not happen: every failure path reports in QEMU's words. Keep it one line.
      img.error(errorMessage(err));
      code = 1;
    }
  }
  img.flush();
  return code;
};
