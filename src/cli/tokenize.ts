import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { resolveModelArg } from '../hub/index.js';
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

/**
 * The ids of `--decode`: a JSON array (what `mft tokenize` prints) or ids separated by commas or
 * spaces, each an integer in the vocabulary.
 */
export function parseIds(text: string, vocabSize: number): number[] {
  const trimmed = text.trim();
  let items: unknown[];
  if (trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      items = Array.isArray(parsed) ? parsed : [parsed];
    } catch {
      return fail(
        '--decode',
        `is not a JSON array: ${JSON.stringify(trimmed.slice(0, 40))}`,
        'pass ids like [1,403,407] or 1,403,407',
      );
    }
  } else {
    items = trimmed === '' ? [] : trimmed.split(/[\s,]+/).map((t) => (/^-?\d+$/.test(t) ? Number(t) : t));
  }
  return items.map((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocabSize) {
      return fail(
        '--decode',
        `item ${i + 1}: ${JSON.stringify(v)} is not a token id of this tokenizer (0..${vocabSize - 1})`,
        'pass the ids mft tokenize printed for this --model',
      );
    }
    return v;
  });
}

/** `mft tokenize`: print the token ids of a text (or file) as one JSON array on stdout, or decode ids. */
export function registerTokenize(program: Command): void {
  program
    .command('tokenize')
    .description('print the token ids of a text as one JSON array (or, with --decode, the text of ids)')
    .requiredOption('--model <dir>', 'model or tokenizer folder (with tokenizer.json)')
    .option('--text <text>', 'the text to tokenize')
    .option('--file <path>', 'a UTF-8 file to tokenize, read byte-exact')
    .option(
      '--no-special',
      'do not add special tokens (such as BOS); with --decode, leave them out of the text',
    )
    .option('--decode <ids>', 'print the text of token ids instead: a JSON array or comma-separated ids')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft tokenize --model checkpoints/base/tinystories-260k --text "Once upon a time"\n' +
        '  [1,403,407,261,378]\n' +
        '  $ mft tokenize --model checkpoints/base/tinystories-260k --file story.txt --no-special\n' +
        '  $ mft tokenize --model checkpoints/base/tinystories-260k --decode "[1,403,407,261,378]" --no-special\n' +
        '  Once upon a time',
    )
    .action(
      async (opts: { model: string; text?: string; file?: string; special: boolean; decode?: string }) => {
        const given = [opts.text, opts.file, opts.decode].filter((x) => x !== undefined).length;
        if (given !== 1) fail('mft tokenize', 'give exactly one of --text, --file and --decode');
        if (opts.decode !== undefined) {
          const tokenizer = await loadTokenizer(await resolveModelArg(opts.model));
          const ids = parseIds(opts.decode, tokenizer.vocabSize);
          process.stdout.write(`${tokenizer.decode(ids, { skipSpecialTokens: !opts.special })}\n`);
          return;
        }
        const text = opts.text ?? readTextFile(opts.file!);
        const tokenizer = await loadTokenizer(await resolveModelArg(opts.model));
        const ids = tokenizer.encode(text, { addSpecialTokens: opts.special });
        process.stdout.write(`${JSON.stringify(ids)}\n`);
      },
    );
}
