import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type BackendChoice, initBackend } from '../backend/index.js';
import { chatPrompt } from '../data/format/chat-prompt.js';
import { type ChatMessage, parseMessages } from '../data/format/chat-template.js';
import { RecordError } from '../data/record-error.js';
import { resolveModelArg } from '../hub/index.js';
import { loraFromAdapter } from '../lora/index.js';
import { checkTrainedBase, openAdapter, trainedBaseOptions } from '../lora/open-adapter.js';
import { checkVocabulary, generate, loadModel } from '../model/index.js';
import { loadTokenizer, TextStream } from '../tokenizer/index.js';
import { fail, jsonOutput } from '../util/index.js';
import { collect } from './collect.js';

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
  chat?: boolean;
  messages?: string;
  stop: string[];
  repetitionPenalty: string;
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

/** The conversation of `--messages FILE` (a JSON list of {role, content}, or {messages: [...]}). */
function readMessages(path: string): ChatMessage[] {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return fail(path, err.code ? `cannot read --messages: ${err.code}` : `not valid JSON: ${err.message}`);
  }
  const list =
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)['messages']
      : value;
  try {
    return parseMessages('messages', list);
  } catch (e) {
    if (e instanceof RecordError)
      return fail(path, e.message, e.fix ?? 'give a JSON list of {"role", "content"} objects');
    throw e;
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
    .option(
      '--chat',
      "the prompt is a user message: apply the model's chat template, stop at its end of turn",
    )
    .option('--messages <file>', 'a JSON conversation [{role, content}, ...] to reply to (implies --chat)')
    .option('--stop <text>', 'stop before this text (repeatable)', collect, [])
    .option('--repetition-penalty <p>', 'CTRL repetition penalty on seen tokens; 1 = off', '1')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft generate --model checkpoints/base/tinystories-260k --max-new-tokens 256 --temperature 0\n' +
        '  $ mft generate --model checkpoints/base/tinystories-260k --prompt "Once upon a time" --seed 7\n' +
        '  $ mft generate --adapter checkpoints/runs/my-run --prompt "def add(a, b):" --json\n' +
        '  $ mft generate --model DIR --chat --prompt "Write a haiku about autumn." --temperature 0.7',
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
      const repetitionPenalty = number(
        'repetition-penalty',
        flags.repetitionPenalty,
        (n) => n > 0,
        'a number > 0',
      );
      if (flags.messages !== undefined && (flags.prompt !== undefined || flags.file !== undefined)) {
        fail(
          'mft generate',
          '--messages is the whole conversation',
          'give either --messages or --prompt / --file',
        );
      }
      const chat = flags.chat === true || flags.messages !== undefined;
      if (
        flags.chat === true &&
        flags.messages === undefined &&
        flags.prompt === undefined &&
        flags.file === undefined
      ) {
        fail(
          'mft generate',
          '--chat needs the user message',
          'give --prompt TEXT, --file PATH or --messages FILE',
        );
      }
      if (!BACKENDS.includes(flags.backend)) {
        fail(
          '--backend',
          `unknown backend ${JSON.stringify(flags.backend)}`,
          `use one of ${BACKENDS.join(', ')}`,
        );
      }
      const text = promptText(flags);

      const opened = flags.adapter !== undefined ? openAdapter(flags.adapter) : null;
      const modelDir =
        flags.model !== undefined ? await resolveModelArg(flags.model) : opened?.adapter.training?.base_model;
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
      checkVocabulary(modelDir, tokenizer);
      const lora = opened ? loraFromAdapter(model, opened.adapter) : null;

      let promptIds: number[];
      const stops = [...flags.stop];
      let stopIds: number[] = [];
      if (chat) {
        const messages =
          flags.messages !== undefined
            ? readMessages(flags.messages)
            : [{ role: 'user' as const, content: text ?? '' }];
        const p = chatPrompt(tokenizer, messages);
        promptIds = p.ids;
        stopIds = p.stopIds;
        stops.push(...p.stopStrings);
      } else if (text === null) {
        const bos = tokenizer.bosId ?? model.spec.bos_token_id;
        if (bos === null)
          fail('mft generate', 'this model has no BOS token to start from', 'give --prompt or --file');
        promptIds = [bos];
      } else {
        promptIds = tokenizer.encode(text);
      }

      // The stream shows text as run.c does: special tokens such as BOS are not printed.
      const stream = new TextStream(
        (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
        promptIds,
        stops,
      );
      const print = (t: string) => {
        if (!flags.json && t !== '') process.stdout.write(t);
      };
      if (!chat) print(tokenizer.decode(promptIds, { skipSpecialTokens: true })); // the prompt as the tokenizer renders it
      const started = performance.now();
      let ids: number[];
      let contextEnd: number | null = null;
      try {
        ids = await generate(model, tokenizer, promptIds, {
          maxNewTokens,
          temperature,
          topP,
          seed,
          stopIds,
          repetitionPenalty,
          lora: lora?.toModelLora(),
          onToken: (id) => {
            print(stream.push(id));
            return stream.stop !== null;
          },
          onContextEnd: (maxPos) => {
            contextEnd = maxPos;
          },
        });
      } finally {
        lora?.dispose();
      }
      print(stream.finish());
      const seconds = (performance.now() - started) / 1000;
      if (flags.json) {
        process.stdout.write(jsonOutput({ prompt_ids: promptIds, ids, text: stream.text }));
      } else {
        process.stdout.write('\n');
      }
      if (contextEnd !== null) {
        process.stderr.write(
          `mft: stopped at the model's max_position_embeddings (${contextEnd} positions: a ${promptIds.length}-token prompt + ${ids.length} generated), before --max-new-tokens ${maxNewTokens}\n`,
        );
      }
      process.stderr.write(
        `mft: ${ids.length} tokens in ${seconds.toFixed(2)} s (${(ids.length / Math.max(seconds, 1e-9)).toFixed(1)} tok/s, backend ${backend})\n`,
      );
    });
}
