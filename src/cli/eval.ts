/**
 * `mft eval`: held-out loss, perplexity, token accuracy and the recipe's task metrics of a base
 * model, a base + adapter, or both side by side (`--compare`).
 */

import { type Command, Option } from 'commander';
import { type BackendChoice, initBackend } from '../backend/index.js';
import { loadRecipe, loadTaskConfig, type Recipe, type TaskConfig } from '../config/index.js';
import type { Truncation } from '../data/index.js';
import {
  DEFAULT_TOKEN_BUDGET,
  type EvalData,
  type EvalReport,
  type EvalSplit,
  evaluate,
  firstTrainerRows,
  LazyTokenizer,
  type LengthPolicy,
  readEvalData,
  resolveDataArg,
  resolveEvalSource,
} from '../eval/index.js';
import { resolveModelArg } from '../hub/index.js';
import { loraFromAdapter } from '../lora/index.js';
import { checkTrainedBase, openAdapter, trainedBaseOptions } from '../lora/open-adapter.js';
import type { PeftAdapter } from '../lora/peft-adapter.js';
import { type LoadModelOptions, loadModel, type Precision, type Quantization } from '../model/index.js';
import { startEvalWorkers } from '../parallel/index.js';
import { fail, jsonOutput } from '../util/index.js';

interface EvalFlags {
  model?: string;
  adapter?: string;
  checkpoint?: string;
  data?: string;
  task?: string;
  split: EvalSplit;
  compare?: boolean;
  json?: boolean;
  maxSamples?: string;
  maxNewTokens: string;
  tokenBudget: string;
  pack?: boolean;
  seed?: string;
  sequenceLen?: string;
  truncation?: Truncation;
  rows?: string;
  quantization?: Quantization;
  precision?: Precision;
  backend?: BackendChoice;
  numWorkers?: string;
}

/** `--num-workers auto | N`, or undefined when not given. */
function numWorkersFlag(value: string | undefined): 'auto' | number | undefined {
  if (value === undefined || value === 'auto') return value;
  return integer('num-workers', value, 1);
}

function integer(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min) {
    fail(`--${flag}`, `expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** How to store the base: flags, else the adapter's mft_training.json, else the task file. */
function baseOptions(
  flags: EvalFlags,
  adapter: PeftAdapter | null,
  config: TaskConfig | null,
): LoadModelOptions {
  const trained = adapter ? trainedBaseOptions(adapter) : {};
  return {
    quantization: flags.quantization ?? trained.quantization ?? config?.quantization ?? 'none',
    doubleQuant: trained.doubleQuant ?? config?.double_quant ?? true,
    precision: flags.precision ?? trained.precision ?? config?.precision ?? 'auto',
  };
}

const pct = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? '-' : `${(100 * x).toFixed(2)}%`;
const fixed = (x: number | undefined, digits: number) =>
  x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);

/** The human-readable table: one column per model. */
function table(columns: [string, EvalReport][]): string {
  const rows: [string, (r: EvalReport) => string][] = [
    ['loss', (r) => fixed(r.loss, 4)],
    ['perplexity', (r) => fixed(r.perplexity, 4)],
    ['token accuracy', (r) => pct(r.token_accuracy)],
    ['tokens (with loss)', (r) => String(r.tokens)],
    ['tokens/s', (r) => fixed(r.tokens_per_second, 0)],
  ];
  if (columns.some(([, r]) => r.line_completion)) {
    rows.push(
      ['line exact match', (r) => pct(r.line_completion?.exact_match)],
      ['line edit similarity', (r) => pct(r.line_completion?.edit_similarity)],
      ['lines completed', (r) => String(r.line_completion?.samples ?? '-')],
    );
  }
  if (columns.some(([, r]) => r.completion)) {
    rows.push(
      ['completion exact match', (r) => pct(r.completion?.exact_match)],
      ['completion edit similarity', (r) => pct(r.completion?.edit_similarity)],
      ['completions generated', (r) => String(r.completion?.samples ?? '-')],
    );
  }
  const labelWidth = Math.max(...rows.map(([label]) => label.length));
  const cells = columns.map(([name, r]) => [name, ...rows.map(([, f]) => f(r))]);
  const widths = cells.map((c) => Math.max(...c.map((s) => s.length)));
  const line = (label: string, values: string[]) =>
    `${label.padEnd(labelWidth)}  ${values.map((v, i) => v.padStart(widths[i]!)).join('  ')}`.trimEnd();
  const column = (k: number) => cells.map((c) => c[k]!);
  return [line('', column(0)), ...rows.map(([label], k) => line(label, column(k + 1)))].join('\n');
}

/** Rows of `--pack`: as long as the token budget allows, within the model's context (and never shorter than a sample). */
function packLength(data: EvalData, tokenBudget: number, spec: { max_position_embeddings: number }): number {
  const longest = data.samples.reduce((m, s) => Math.max(m, s.ids.length), 0);
  return Math.max(longest, Math.min(tokenBudget, spec.max_position_embeddings));
}

/**
 * How long samples are cut: as the task file says, or with `--task` as training with that recipe
 * would (its sequence_len, at most the model's context), the flags winning over both. Without a
 * task file, `--task` or a flag, records are evaluated whole and one longer than the context is an error.
 */
function lengthPolicy(
  flags: EvalFlags,
  config: TaskConfig | null,
  recipe: Recipe,
  maxPositions: number,
): LengthPolicy {
  const asked = flags.sequenceLen !== undefined ? integer('sequence-len', flags.sequenceLen, 2) : undefined;
  if (asked !== undefined && asked > maxPositions) {
    fail(
      '--sequence-len',
      `${asked} is more than the model's max_position_embeddings ${maxPositions}`,
      `give --sequence-len ${maxPositions} or less`,
    );
  }
  if (config) {
    return {
      kind: 'truncate',
      sequenceLen: asked ?? config.sequence_len,
      truncation: flags.truncation ?? config.truncation,
    };
  }
  if (flags.task === undefined && asked === undefined && flags.truncation === undefined)
    return { kind: 'error' };
  return {
    kind: 'truncate',
    sequenceLen: asked ?? Math.min(recipe.defaults.sequence_len ?? maxPositions, maxPositions),
    truncation: flags.truncation ?? recipe.defaults.truncation ?? 'split',
  };
}

/**
 * `--rows N`: the samples of the first N validation rows as the trainer packs them. Without it, every
 * row, and a note when the trainer's `eval_loss` covers fewer (`eval_max_samples`).
 */
function trainerRowsOf(
  read: EvalData,
  config: TaskConfig | null,
  flags: EvalFlags,
): { data: EvalData; rows: string | null } {
  const asked = flags.rows !== undefined ? integer('rows', flags.rows, 1) : null;
  if (!config) {
    if (asked !== null)
      fail('--rows', 'needs a task file (its sequence_len, sample_packing and seed lay out the rows)');
    return { data: read, rows: null };
  }
  const layout = { seqLen: config.sequence_len, packing: config.sample_packing, seed: config.seed };
  const { data, rows } = firstTrainerRows(read, layout, asked);
  if (asked !== null) {
    const n = Math.min(asked, rows);
    return {
      data,
      rows: `the first ${n} of ${rows} packed rows (${data.samples.length} samples), as a run's eval_loss with eval_max_samples: ${n}`,
    };
  }
  if (rows > config.eval_max_samples) {
    const n = config.eval_max_samples;
    return {
      data,
      rows: `all ${rows} packed rows; a run's eval_loss covers the first ${n} (eval_max_samples), --rows ${n} evaluates those`,
    };
  }
  return { data, rows: null };
}

/** Summary lines on stderr: what was read and what was left out. */
function describeData(data: EvalData, description: string): string[] {
  const lines = [`mft: data: ${description}: ${data.recordCount} records, ${data.samples.length} samples`];
  if (data.truncated > 0 || data.dropped > 0) {
    lines.push(
      `mft: data: ${data.truncated} samples cut to sequence_len, ${data.dropped} dropped as too long`,
    );
  }
  if (data.skipped > 0) {
    lines.push(`mft: data: skipped ${data.skipped} bad records, first: ${data.skippedExamples.join('; ')}`);
  }
  return lines;
}

/** `mft eval`. */
export function registerEval(program: Command): void {
  program
    .command('eval')
    .description(
      'evaluate a base model (and an adapter): held-out loss, perplexity, token accuracy, task metrics',
    )
    .argument('[task_file]', "task file: its base_model, dataset (validation split) and recipe's metrics")
    .option('--model <dir>', 'base model folder (default: the task file or the adapter names it)')
    .option('--adapter <dir>', 'PEFT adapter folder, or a run folder (its final adapter/)')
    .option('--checkpoint <best|N>', 'with a run folder: use checkpoint-N/, or the best by eval loss')
    .option('--data <file_or_name>', 'data file (every record), dataset folder or name under datasets/')
    .option('--task <recipe>', 'recipe that formats --data records without a task file (default: text)')
    .addOption(
      new Option('--split <split>', 'split of a dataset folder')
        .choices(['validation', 'test'])
        .default('validation'),
    )
    .option('--compare', 'evaluate the base model and base + adapter side by side')
    .option('--json', 'print one JSON object')
    .option(
      '--max-samples <n>',
      "most prompts for generation metrics (default: the recipe's eval_max_samples)",
    )
    .option('--max-new-tokens <n>', 'most tokens generated per prompt', '128')
    .option(
      '--token-budget <n>',
      'most tokens (rows x padded length) in one forward batch',
      String(DEFAULT_TOKEN_BUDGET),
    )
    .option('--pack', 'pack samples into rows with document masking (same results as one sample per row)')
    .option(
      '--rows <n>',
      "with a task file: only the first N packed validation rows, the rows a run's eval_loss covers with eval_max_samples: N",
    )
    .option(
      '--sequence-len <n>',
      "cut samples to this many tokens (default: the task file's sequence_len; with --task, the recipe's)",
    )
    .addOption(
      new Option(
        '--truncation <mode>',
        "a sample longer than --sequence-len (default: the task file's, else split)",
      ).choices(['split', 'truncate', 'drop']),
    )
    .option('--seed <n>', 'seed of the prompt draw (default: the task seed, else 0)')
    .addOption(
      new Option('--quantization <q>', "base storage (default: the adapter's mft_training.json)").choices([
        'none',
        'int8',
        'nf4',
      ]),
    )
    .addOption(
      new Option('--precision <p>', 'storage dtype of unquantized weights').choices([
        'auto',
        'fp32',
        'bf16',
        'fp16',
      ]),
    )
    .addOption(
      new Option('--backend <name>', 'tfjs backend (default: the task file, else auto)').choices([
        'auto',
        'tensorflow',
        'webgpu',
        'wasm',
        'cpu',
      ]),
    )
    .option(
      '--num-workers <n>',
      "worker threads for the loss batches: auto or a number (default: the task file's num_workers, else 1)",
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft eval configs/code_completion.yaml --adapter checkpoints/runs/code --compare\n' +
        '  $ mft eval --model checkpoints/base/tinystories-260k --data datasets/github_code --task code_completion\n' +
        '  $ mft eval --model test/fixtures/llama-golden --data tokens.jsonl --json',
    )
    .action(async (taskFile: string | undefined, flags: EvalFlags) => {
      const maxNewTokens = integer('max-new-tokens', flags.maxNewTokens, 1);
      const tokenBudget = integer('token-budget', flags.tokenBudget, 1);
      if (taskFile !== undefined && flags.task !== undefined) {
        fail('--task', 'the task file names the recipe already', 'drop --task, or drop the task file');
      }
      if (flags.compare && flags.adapter === undefined) {
        fail('--compare', 'needs an adapter to compare with the base', 'give --adapter DIR');
      }
      if (flags.checkpoint !== undefined && flags.adapter === undefined) {
        fail('--checkpoint', 'needs --adapter RUN_DIR', 'give the run folder as --adapter');
      }
      const config = taskFile !== undefined ? await loadTaskConfig(taskFile) : null;
      const recipe: Recipe = config?.recipe ?? loadRecipe(flags.task ?? 'text');

      const opened = flags.adapter !== undefined ? openAdapter(flags.adapter, flags.checkpoint) : null;
      if (opened) process.stderr.write(`mft: evaluating ${opened.description}\n`);
      const adapter = opened?.adapter ?? null;
      const modelDir =
        (flags.model !== undefined ? await resolveModelArg(flags.model) : undefined) ??
        config?.base_model ??
        adapter?.training?.base_model;
      if (modelDir === undefined) {
        fail(
          'mft eval',
          'no base model',
          'give --model DIR, a task file, or an adapter whose mft_training.json names its base',
        );
      }
      const paths = flags.data !== undefined ? [resolveDataArg(flags.data)] : config?.dataset;
      if (paths === undefined) {
        fail('mft eval', 'no data to evaluate', 'give --data FILE_OR_NAME or a task file');
      }
      const source = resolveEvalSource(paths, {
        split: flags.split,
        explicitFiles: flags.data !== undefined,
        heldOut: config ? { valSetSize: config.val_set_size, seed: config.seed } : null,
      });

      const backend = await initBackend(flags.backend ?? config?.backend ?? 'auto');
      const loadOptions = baseOptions(flags, adapter, config);
      const loaded = await loadModel(modelDir, loadOptions);
      if (opened) checkTrainedBase(opened, { dir: modelDir, configHash: loaded.configHash });
      const { evalWorkers, lora } = await startEvalWorkers(
        numWorkersFlag(flags.numWorkers) ?? config?.num_workers ?? 1,
        backend,
        loaded,
        tokenBudget,
        modelDir,
        (m) => (adapter ? loraFromAdapter(m, adapter) : null),
      );
      const model = evalWorkers.model;
      const tokenizer = new LazyTokenizer(modelDir);
      const length = lengthPolicy(flags, config, recipe, model.spec.max_position_embeddings);
      const read = await readEvalData({
        files: source.files,
        heldOut: source.heldOut,
        recipe,
        fields: config?.fields,
        seed: config?.seed ?? 0,
        onBadRecord: config?.on_bad_record ?? 'error',
        maxRecordBytes: config?.max_record_bytes,
        length,
        maxPositions: model.spec.max_position_embeddings,
        vocabSize: model.spec.vocab_size,
        tokenizer,
      });
      for (const line of describeData(read, source.description)) process.stderr.write(`${line}\n`);
      const { data, rows: rowNote } = trainerRowsOf(read, config, flags);
      if (rowNote) process.stderr.write(`mft: data: ${rowNote}\n`);
      if (data.samples.length === 0) {
        fail(source.description, 'no records to evaluate', 'check the data files and the recipe fields');
      }

      const tok = tokenizer.loaded;
      const padId = tok?.padId ?? tok?.eosId ?? model.spec.eos_token_id[0] ?? 0;
      const common = {
        metrics: recipe.eval_metrics,
        format: recipe.format,
        maxSamples:
          flags.maxSamples !== undefined
            ? integer('max-samples', flags.maxSamples, 0)
            : (config?.eval_max_samples ?? recipe.defaults.eval_max_samples ?? 64),
        maxNewTokens,
        seed: flags.seed !== undefined ? integer('seed', flags.seed, 0) : (config?.seed ?? 0),
        tokenizer,
        loss: {
          tokenBudget,
          padId,
          packLength: flags.pack ? packLength(data, tokenBudget, model.spec) : undefined,
        },
        log: (line: string) => process.stderr.write(`mft: ${line}\n`),
      };
      let base: EvalReport | null = null;
      let tuned: EvalReport | null = null;
      const on = async (withLora: boolean) => {
        const scorer = await evalWorkers.scorer(withLora);
        const continuer = await evalWorkers.continuer(withLora);
        return {
          ...common,
          loss: { ...common.loss, ...(scorer ? { scorer } : {}) },
          ...(continuer ? { continuer } : {}),
        };
      };
      try {
        if (!lora || flags.compare) base = await evaluate(model, data, await on(false));
        if (lora) tuned = await evaluate(model, data, { ...(await on(true)), lora: lora.toModelLora() });
      } finally {
        lora?.dispose();
        await evalWorkers.close();
      }
      const main = (tuned ?? base) as EvalReport;
      process.stderr.write(
        `mft: ${main.tokens} tokens with loss in ${main.samples} samples, ${main.batches} batches, ${main.seconds.toFixed(2)} s (${main.tokens_per_second.toFixed(0)} tok/s, backend ${backend}, ${evalWorkers.workers.count > 1 ? `${evalWorkers.workers.count} workers` : 'main thread'})\n`,
      );

      if (flags.json) {
        const out: Record<string, unknown> = {
          ...main,
          model: modelDir,
          adapter: opened?.dir ?? null,
          data: rowNote ? `${source.description}, ${rowNote}` : source.description,
          records: data.recordCount,
          quantization: loadOptions.quantization,
          backend,
        };
        if (base && tuned) out.base = base;
        process.stdout.write(jsonOutput(out));
        return;
      }
      const columns: [string, EvalReport][] = [];
      if (base) columns.push(['base', base]);
      if (tuned) columns.push(['adapter', tuned]);
      process.stdout.write(`${table(columns)}\n`);
    });
}
