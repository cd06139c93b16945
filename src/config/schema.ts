/**
 * Every task key in one table: its type, its default and a one-line description. The loader,
 * `mft config check`, `mft config schema` and the configuration reference in docs/task-files.md all read this.
 *
 * Defaults come in three kinds: a value here (`.default(...)`), a value from the task's recipe
 * (`defaultText: 'recipe'`), or one computed when the file is loaded (`output_dir`, `cache_dir`).
 */
import { z } from 'zod';
import { LINEAR_NAMES } from '../model/linear-names.js';
import { bool, int, intOrNull, num, numOrNull, oneOf, stringMap, text } from './key-types.js';

// Keys whose default comes from the recipe (or is computed at load time) are optional here and
// say so in `defaultText`; `mft config schema` prints that text in the default column.
const fromRecipe = { defaultText: 'recipe' };

const run = {
  task: text('name or path')
    .optional()
    .describe(
      'recipe: a name in recipes/ (code_completion, completion, alpaca, instruct, text) or a recipe file',
    )
    .meta({ defaultText: 'required' }),
  dataset: z
    .union([text(), z.array(text()).min(1, { error: 'must not be an empty list' })], {
      error: 'expected a name, a path or a list of paths',
    })
    .meta({ type: 'name, path or list of paths' })
    .optional()
    .describe('a name in datasets/, a path to a data file or folder, or a list of paths')
    .meta({ defaultText: 'required' }),
  base_model: text('path')
    .optional()
    .describe('Hugging Face model folder (config.json, *.safetensors, tokenizer.json)')
    .meta(fromRecipe),
  backend: oneOf(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'])
    .default('auto')
    .describe(
      'tfjs backend; auto tries tensorflow (tfjs-node-gpu, tfjs-node), then webgpu (a real GPU only), then wasm, then cpu',
    ),
  num_workers: z
    .union([z.literal('auto'), int({ gte: 1 })], { error: 'expected auto or an integer >= 1' })
    .meta({ type: 'auto or int >= 1' })
    .default('auto')
    .describe(
      "worker threads that share each step's rows (wasm, cpu); auto: one per core, fewer when memory is short",
    ),
  seed: int({ gte: 0, lte: 4294967295 })
    .default(42)
    .describe('seed of every random choice: LoRA init, dropout, shuffling, validation split'),
  output_dir: text('path')
    .optional()
    .describe(
      'run folder (checkpoints, metrics.jsonl, final adapter); the default is under the current directory',
    )
    .meta({ defaultText: './checkpoints/runs/<task-file-stem>-<YYYYMMDD-HHMMSS>' }),
  cache_dir: text('path')
    .optional()
    .describe('where tokenized, packed datasets are cached')
    .meta({ defaultText: '$MFT_CACHE_DIR or ~/.cache/mft' }),
};

const lora = {
  lora_r: int({ gt: 0 }).default(16).describe('rank of the LoRA update; higher: more capacity, more memory'),
  lora_alpha: num({ gt: 0 })
    .default(32)
    .describe('LoRA scale numerator: the update is scaled by lora_alpha / lora_r'),
  lora_dropout: num({ gte: 0, lt: 1 })
    .default(0.05)
    .describe('dropout on the input of each LoRA update, in training'),
  lora_target_modules: z
    .union(
      [
        z.literal('all-linear'),
        z
          .array(oneOf(LINEAR_NAMES).meta({ type: 'module name' }))
          .min(1, { error: 'must not be an empty list' }),
      ],
      { error: `expected all-linear or a list of ${LINEAR_NAMES.join(', ')}` },
    )
    .meta({ type: 'list of module names or all-linear' })
    .default('all-linear')
    .describe('linear layers that get an adapter: a list of names (q_proj, v_proj, ...) or all-linear'),
  use_rslora: bool().default(false).describe('rank-stabilised LoRA: scale by lora_alpha / sqrt(lora_r)'),
};

const baseStorage = {
  quantization: oneOf(['none', 'int8', 'nf4'])
    .default('none')
    .describe('storage of the frozen base weights: as loaded, int8 (absmax per block) or nf4 (QLoRA)'),
  double_quant: bool()
    .default(true)
    .describe('nf4: quantize the per-block scales to 8 bits too (about 0.37 bits per parameter less)'),
  precision: oneOf(['auto', 'fp32', 'bf16', 'fp16'])
    .default('auto')
    .describe('storage dtype of unquantized base weights; auto keeps the checkpoint dtype (compute is fp32)'),
  gradient_checkpointing: bool()
    .default(true)
    .describe('recompute each layer in the backward pass instead of keeping its activations'),
};

const data = {
  sequence_len: int({ gte: 2 })
    .optional()
    .describe('tokens per training row; at most the model max_position_embeddings')
    .meta(fromRecipe),
  sample_packing: bool()
    .default(true)
    .describe('pack several samples into one row; attention stays within each sample'),
  truncation: oneOf(['split', 'truncate', 'drop'])
    .default('split')
    .describe('a sample longer than sequence_len: split it into rows, cut it, or drop it'),
  val_set_size: num()
    .refine((v) => (v > 0 && v < 1) || (Number.isInteger(v) && v >= 0), {
      error: 'expected a fraction in (0, 1) or a whole count',
    })
    .meta({ type: 'fraction in (0, 1) or count' })
    .optional()
    .describe('held-out part of the training data when the dataset has no validation split')
    .meta(fromRecipe),
  on_bad_record: oneOf(['error', 'skip'])
    .default('error')
    .describe('a record that cannot be used: stop with an error, or skip it and report the count'),
  max_record_bytes: int({ gt: 0 })
    .default(8 * 2 ** 20) // DEFAULT_MAX_RECORD_BYTES of data/record-size.ts
    .describe(
      'a record larger than this (bytes of its line or its text) is a bad record, never read whole or tokenized',
    ),
  fields: stringMap()
    .optional()
    .describe(
      "dataset column for each field the recipe reads, e.g. {text: content}; unset fields keep the recipe's",
    )
    .meta({ defaultText: "the recipe's fields" }),
  fim_rate: num({ gte: 0, lte: 1 })
    .default(0)
    .describe('code_completion: fraction of samples rearranged for fill-in-the-middle'),
};

const optimisation = {
  micro_batch_size: int({ gt: 0 })
    .optional()
    .describe('rows in one forward and backward pass')
    .meta(fromRecipe),
  gradient_accumulation_steps: int({ gt: 0 }).default(1).describe('micro-batches per optimizer step'),
  num_epochs: num({ gt: 0 })
    .optional()
    .describe('passes over the training data; max_steps wins when set')
    .meta(fromRecipe),
  max_steps: intOrNull({ gt: 0 }).default(null).describe('optimizer steps to run; overrides num_epochs'),
  learning_rate: num({ gt: 0 }).optional().describe('peak learning rate of AdamW').meta(fromRecipe),
  lr_scheduler: oneOf(['constant', 'linear', 'cosine'])
    .default('cosine')
    .describe('learning-rate schedule after the warmup, decaying to min_lr_ratio * learning_rate'),
  warmup_steps: int({ gte: 0 })
    .default(0)
    .describe('linear warmup length in steps (set this or warmup_ratio)'),
  warmup_ratio: num({ gte: 0, lt: 1 })
    .default(0)
    .describe('linear warmup length as a fraction of all steps (set this or warmup_steps)'),
  min_lr_ratio: num({ gte: 0, lte: 1 })
    .default(0)
    .describe('end of the schedule as a fraction of learning_rate'),
  weight_decay: num({ gte: 0 }).default(0).describe('AdamW decoupled weight decay'),
  adam_beta1: num({ gte: 0, lt: 1 }).default(0.9).describe('AdamW decay rate of the first moment'),
  adam_beta2: num({ gte: 0, lt: 1 }).default(0.999).describe('AdamW decay rate of the second moment'),
  adam_epsilon: num({ gt: 0 }).default(1e-8).describe('AdamW term added to the denominator'),
  max_grad_norm: numOrNull({ gt: 0 })
    .default(1.0)
    .describe('clip the global gradient norm to this; null: no clipping'),
};

const evalSaveLog = {
  eval_steps: intOrNull({ gt: 0 })
    .default(null)
    .describe('evaluate on the validation split every N steps; null: only at the end'),
  eval_max_samples: int({ gt: 0 })
    .optional()
    .describe(
      'packed validation rows used in each evaluation (the first N); mft eval: prompts for generation metrics',
    )
    .meta(fromRecipe),
  save_steps: int({ gt: 0 }).default(100).describe('save a checkpoint every N steps'),
  save_total_limit: int({ gt: 0 }).default(3).describe('checkpoints kept on disk, plus the best one'),
  logging_steps: int({ gt: 0 }).default(10).describe('print and record the training loss every N steps'),
};

/** The task keys by section, in the order `config check` and the docs print them. */
export const KEY_GROUPS = {
  run: Object.keys(run),
  LoRA: Object.keys(lora),
  'base weights': Object.keys(baseStorage),
  data: Object.keys(data),
  optimisation: Object.keys(optimisation),
  'evaluation, saving, logging': Object.keys(evalSaveLog),
} as const;

/** The schema of a task file: every key, each optional in the file. */
export const TASK_SCHEMA = z.strictObject({
  ...run,
  ...lora,
  ...baseStorage,
  ...data,
  ...optimisation,
  ...evalSaveLog,
});

/** A task key (`lora_alpha`, `sequence_len`, ...). */
export type TaskKey = keyof typeof TASK_SCHEMA.shape;

/** All task keys in table order. */
export const TASK_KEYS = Object.keys(TASK_SCHEMA.shape) as TaskKey[];

/** Task keys that name files or folders and are resolved to absolute paths. */
export const PATH_KEYS = ['dataset', 'base_model', 'output_dir', 'cache_dir'] as const;

/** Names other tools use for a task key, suggested when a task file uses them. */
export const KEY_ALIASES: Readonly<Record<string, TaskKey>> = {
  lr: 'learning_rate',
  epochs: 'num_epochs',
  num_train_epochs: 'num_epochs',
  batch_size: 'micro_batch_size',
  per_device_train_batch_size: 'micro_batch_size',
  lr_scheduler_type: 'lr_scheduler',
  max_seq_length: 'sequence_len',
  max_seq_len: 'sequence_len',
  seq_len: 'sequence_len',
  lora_rank: 'lora_r',
  target_modules: 'lora_target_modules',
  model: 'base_model',
  model_name_or_path: 'base_model',
  base_model_name_or_path: 'base_model',
  warmup: 'warmup_steps',
  load_in_4bit: 'quantization',
  load_in_8bit: 'quantization',
  dataset_path: 'dataset',
  datasets: 'dataset',
};

/** The zod schema of one key. */
export function keySchema(key: TaskKey): z.ZodType {
  return TASK_SCHEMA.shape[key];
}

/** The built-in default of a key, or undefined when it comes from the recipe or is computed. */
export function builtinDefault(key: TaskKey): unknown {
  const r = keySchema(key).safeParse(undefined);
  return r.success ? r.data : undefined;
}
