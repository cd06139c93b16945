/**
 * The `mft` command-line program. Each command lives in its own file and registers itself here;
 * this file maps errors to exit codes: a user mistake (MftError) prints one line per problem and
 * exits 2, anything else is a bug and prints its stack (exit 1).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { asUserFileError, formatProblem } from '../util/index.js';

type Register = (program: Command) => void;

// Each command's module, loaded only when needed: tfjs and Arrow take about half a second to import,
// which `mft tokenize` or `mft config check` should not pay. The order is the order of `mft --help`:
// the workflow's order, train first.
const COMMANDS: Record<string, () => Promise<Register>> = {
  train: async () => (await import('./train.js')).registerTrain,
  eval: async () => (await import('./eval.js')).registerEval,
  generate: async () => (await import('./generate.js')).registerGenerate,
  serve: async () => (await import('./serve.js')).registerServe,
  merge: async () => (await import('./merge.js')).registerMerge,
  export: async () => (await import('./export.js')).registerExport,
  data: async () => (await import('./data.js')).registerData,
  config: async () => (await import('./config.js')).registerConfig,
  tokenize: async () => (await import('./tokenize.js')).registerTokenize,
  convert: async () => (await import('./convert.js')).registerConvert,
  doctor: async () => (await import('./doctor.js')).registerDoctor,
};

function packageVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/**
 * Build the commander program: with `argv`, only the command it names is registered (none for
 * `--version`, every command when it names none, as for `mft --help`).
 */
export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('mft')
    .description('Fine-tune open LLMs with LoRA and QLoRA from YAML task files')
    .version(packageVersion(), '-V, --version')
    .option('--debug', 'show stack traces for every error')
    .showHelpAfterError()
    .exitOverride();
  const args = argv.slice(2);
  const named = args.find((a) => !a.startsWith('-'));
  const versionOnly = named === undefined && (args.includes('-V') || args.includes('--version'));
  const wanted =
    named !== undefined && Object.hasOwn(COMMANDS, named)
      ? [named]
      : versionOnly
        ? []
        : Object.keys(COMMANDS);
  for (const name of wanted) (await COMMANDS[name]!())(program);
  return program;
}

/** Run the CLI with `argv` (as `process.argv`); resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through here with code 0; usage errors were already printed.
      return err.exitCode === 0 ? 0 : 2;
    }
    // a full disk, a read-only or forbidden folder: the user's to fix, not a bug
    const userError = asUserFileError(err);
    if (userError) {
      for (const p of userError.problems) process.stderr.write(`mft: ${formatProblem(p)}\n`);
      if (debug) process.stderr.write(`${(err as Error).stack}\n`);
      return 2;
    }
    process.stderr.write(
      `mft: internal error (a bug, please report it):\n${(err as Error)?.stack ?? String(err)}\n`,
    );
    return 1;
  }
}
