import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type BackendChoice, initBackend } from '../backend/index.js';
import { loraFromAdapter } from '../lora/index.js';
import { checkTrainedBase, openAdapter, trainedBaseOptions } from '../lora/open-adapter.js';
import { generate, loadModel } from '../model/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { fail } from '../util/index.js';

interface GenerateFlags {
  model?: string;
  adapter?: string;
  prompt?: string;
  file?: string;
  maxNewTokens: string;
  temperature: string;
  topP: string;
  seed: string;
  json?: boolean;
  backend: string;
}

const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

// fatal: invalid UTF-8 is reported, not replaced; ignoreBOM: a leading BOM is kept as text.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function number(flag: string, value: string, ok: (n: number) => boolean, expected: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !ok(n)) {
    fail(`--${flag}`, `expected ${expected}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** The prompt text: `--prompt`, or `--file` read byte-exact; null = none (start from BOS). */
function promptText(flags: GenerateFlags): string | null {
  if (flags.prompt !== undefined && flags.file !== undefined) {
    fail('mft generate', 'give at most one of --prompt and --file');
  }
  if (flags.file === undefined) return flags.prompt ?? null;
  let bytes: Buffer;
  try {
    bytes = readFileSync(flags.file);
  } catch (e) {
    return fail(
      flags.file,
      `cannot read --file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  try {
    return utf8.decode(bytes);
  } catch {
    return fail(flags.file, 'is not valid UTF-8', 'convert the file to UTF-8');
  }
}

/**
 * Print the text of `ids` as it grows: only whole characters (a byte-fallback token may end in the
 * middle of a UTF-8 sequence, which decodes to U+FFFD until the rest arrives).
 */
class TextStream {
  private printed = '';
  private readonly ids: number[];

  constructor(
    private readonly decode: (ids: number[]) => string,
    start: number[],
  ) {
    this.ids = [...start];
  }

  push(id: number | null): void {
    if (id !== null) this.ids.push(id);
    const text = this.decode(this.ids);
    if (id !== null && text.endsWith('\uFFFD')) return;
    if (text.startsWith(this.printed)) process.stdout.write(text.slice(this.printed.length));
    else process.stdout.write(text); // the decoder rewrote earlier text; rare, print what we have
    this.printed = text;
  }
}

/** `mft generate`: sample text from a base model, with an optional LoRA adapter. */
export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text with a base model (and optionally a LoRA adapter), streamed to stdout')
    .option('--model <dir>', 'base model directory (default: the base recorded in the adapter)')
    .option('--adapter <dir>', 'PEFT adapter directory (or a run directory with adapter/)')
    .option('--prompt <text>', 'prompt text (default: start from BOS)')
    .option('--file <path>', 'read the prompt from a UTF-8 file, byte-exact')
    .option('--max-new-tokens <n>', 'most tokens to generate', '256')
    .option('--temperature <t>', '0 = greedy; higher = more random', '1.0')
    .option('--top-p <p>', 'nucleus sampling mass in (0, 1]; 1 = off', '0.9')
    .option('--seed <n>', 'sampler seed', '0')
    .option('--json', 'print one JSON object {prompt_ids, ids, text} (generated tokens only)')
    .option('--backend <name>', 'auto | tensorflow | webgpu | wasm | cpu', 'auto')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft generate --model checkpoints/base/tinystories-260k --max-new-tokens 256 --temperature 0\n' +
        '  $ mft generate --model checkpoints/base/tinystories-260k --prompt "Once upon a time" --seed 7\n' +
        '  $ mft generate --adapter checkpoints/runs/my-run --prompt "def add(a, b):" --json',
    )
    .action(async (flags: GenerateFlags) => {
      const maxNewTokens = number(
        'max-new-tokens',
        flags.maxNewTokens,
        (n) => Number.isInteger(n) && n >= 0,
        'an integer >= 0',
      );
      const temperature = number('temperature', flags.temperature, (n) => n >= 0, 'a number >= 0');
      const topP = number('top-p', flags.topP, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
      const seed = number('seed', flags.seed, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
      if (!BACKENDS.includes(flags.backend)) {
        fail(
          '--backend',
          `unknown backend ${JSON.stringify(flags.backend)}`,
          `use one of ${BACKENDS.join(', ')}`,
        );
      }
      const text = promptText(flags);

      const opened = flags.adapter !== undefined ? openAdapter(flags.adapter) : null;
      const modelDir = flags.model ?? opened?.adapter.training?.base_model;
      if (modelDir === undefined) {
        fail(
          'mft generate',
          'no base model',
          'give --model DIR (or an adapter whose mft_training.json names its base)',
        );
      }
      const backend = await initBackend(flags.backend as BackendChoice);
      // The base as the adapter was trained on it (mft_training.json), or the plain base.
      const model = await loadModel(modelDir, opened ? trainedBaseOptions(opened.adapter) : {});
      if (opened) checkTrainedBase(opened, { dir: modelDir, configHash: model.configHash });
      const tokenizer = await loadTokenizer(modelDir);
      const lora = opened ? loraFromAdapter(model, opened.adapter) : null;

      let promptIds: number[];
      if (text === null) {
        const bos = tokenizer.bosId ?? model.spec.bos_token_id;
        if (bos === null)
          fail('mft generate', 'this model has no BOS token to start from', 'give --prompt or --file');
        promptIds = [bos];
      } else {
        promptIds = tokenizer.encode(text);
      }

      // The stream shows text as run.c does: special tokens such as BOS are not printed.
      const stream = flags.json
        ? null
        : new TextStream((ids) => tokenizer.decode(ids, { skipSpecialTokens: true }), promptIds);
      stream?.push(null); // the prompt as the tokenizer renders it
      const started = performance.now();
      let ids: number[];
      try {
        ids = await generate(model, tokenizer, promptIds, {
          maxNewTokens,
          temperature,
          topP,
          seed,
          lora: lora?.toModelLora(),
          onToken: (id) => stream?.push(id),
        });
      } finally {
        lora?.dispose();
      }
      const seconds = (performance.now() - started) / 1000;
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({ prompt_ids: promptIds, ids, text: tokenizer.decode(ids) })}\n`,
        );
      } else {
        process.stdout.write('\n');
      }
      process.stderr.write(
        `mft: ${ids.length} tokens in ${seconds.toFixed(2)} s (${(ids.length / Math.max(seconds, 1e-9)).toFixed(1)} tok/s, backend ${backend})\n`,
      );
    });
}
