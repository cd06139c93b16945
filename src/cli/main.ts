/**
 * The `mft` command-line program. Each command lives in its own file and registers itself here;
 * this file maps errors to exit codes: a user mistake (MftError) prints one line per problem and
 * exits 2, anything else is a bug and prints its stack (exit 1).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { formatProblem, MftError } from '../util/index.js';
import { registerConfig } from './config.js';
import { registerConvert } from './convert.js';
import { registerData } from './data.js';
import { registerDoctor } from './doctor.js';
import { registerEval } from './eval.js';
import { registerGenerate } from './generate.js';
import { registerMerge } from './merge.js';
import { registerTokenize } from './tokenize.js';
import { registerTrain } from './train.js';

function packageVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/** Build the commander program with every working command registered. */
export function buildProgram(): Command {
  const program = new Command('mft')
    .description('Fine-tune open LLMs with LoRA and QLoRA from YAML task files')
    .version(packageVersion(), '-V, --version')
    .option('--debug', 'show stack traces for every error')
    .showHelpAfterError()
    .exitOverride();
  registerDoctor(program);
  registerMerge(program);
  registerConfig(program);
  registerData(program);
  registerConvert(program);
  registerTokenize(program);
  registerGenerate(program);
  registerEval(program);
  registerTrain(program);
  return program;
}

/** Run the CLI with `argv` (as `process.argv`); resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through here with code 0; usage errors were already printed.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof MftError) {
      for (const p of err.problems) process.stderr.write(`mft: ${formatProblem(p)}\n`);
      if (debug) process.stderr.write(`${err.stack}\n`);
      return 2;
    }
    process.stderr.write(
      `mft: internal error (a bug, please report it):\n${(err as Error)?.stack ?? String(err)}\n`,
    );
    return 1;
  }
}
