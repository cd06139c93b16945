import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
// The tokenizer module directly, not src/model/index.ts: tokenizing needs no tfjs backend and
// should not load one.
import { loadTokenizer } from '../tokenizer/tokenizer.js';
import { fail } from '../util/index.js';

// fatal: invalid UTF-8 is reported, not replaced; ignoreBOM: a leading BOM is kept as text.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of `--file`, byte-exact: no trimming, no newline handling, no BOM stripping. */
function readTextFile(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    return fail(path, `cannot read --file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    return fail(path, 'is not valid UTF-8', 'convert the file to UTF-8');
  }
}

/** `mft tokenize`: print the token ids of a text (or file) as one JSON array on stdout. */
export function registerTokenize(program: Command): void {
  program
    .command('tokenize')
    .description('print the token ids of a text as one JSON array')
    .requiredOption('--model <dir>', 'model or tokenizer folder (with tokenizer.json)')
    .option('--text <text>', 'the text to tokenize')
    .option('--file <path>', 'a UTF-8 file to tokenize, read byte-exact')
    .option('--no-special', 'do not add special tokens (such as BOS)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft tokenize --model checkpoints/base/tinystories-260k --text "Once upon a time"\n' +
        '  [1,403,407,261,378]\n' +
        '  $ mft tokenize --model checkpoints/base/tinystories-260k --file story.txt --no-special',
    )
    .action(async (opts: { model: string; text?: string; file?: string; special: boolean }) => {
      if ((opts.text === undefined) === (opts.file === undefined)) {
        fail('mft tokenize', 'give exactly one of --text and --file');
      }
      const text = opts.text ?? readTextFile(opts.file!);
      const tokenizer = await loadTokenizer(opts.model);
      const ids = tokenizer.encode(text, { addSpecialTokens: opts.special });
      process.stdout.write(`${JSON.stringify(ids)}\n`);
    });
}
