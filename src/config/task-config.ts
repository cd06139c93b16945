/**
 * The resolved configuration of a run: one frozen object with every task key (snake_case, as in
 * the task file), paths made absolute, plus the recipe and where each value came from.
 */

import type { LinearName } from '../model/linear-names.js';
import type { Recipe } from './recipe.js';

/** Where a value came from, from lowest to highest precedence: default < recipe < task file < --set. */
export type ValueSource = 'default' | 'recipe' | 'task file' | '--set';

/** The value of every task key after merging and resolving (see `mft config schema`). */
export interface TaskValues {
  // run
  /** The recipe's name (`recipe.name`), whatever the task file wrote. */
  task: string;
  /** Absolute paths of the data files or folders. */
  dataset: string[];
  /** Absolute path of the base model folder. */
  base_model: string;
  backend: 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  seed: number;
  output_dir: string;
  cache_dir: string;
  // LoRA
  lora_r: number;
  lora_alpha: number;
  lora_dropout: number;
  lora_target_modules: LinearName[] | 'all-linear';
  use_rslora: boolean;
  // base weights
  quantization: 'none' | 'int8' | 'nf4';
  double_quant: boolean;
  precision: 'auto' | 'fp32' | 'bf16' | 'fp16';
  gradient_checkpointing: boolean;
  // data
  sequence_len: number;
  sample_packing: boolean;
  truncation: 'split' | 'truncate' | 'drop';
  /** A fraction in (0, 1), or a count of samples (0: none). */
  val_set_size: number;
  on_bad_record: 'error' | 'skip';
  /** Recipe field -> dataset column, for every field the recipe reads. */
  fields: Record<string, string>;
  fim_rate: number;
  // optimisation
  micro_batch_size: number;
  gradient_accumulation_steps: number;
  /** Infinity when only `max_steps` bounds the run. */
  num_epochs: number;
  max_steps: number | null;
  learning_rate: number;
  lr_scheduler: 'constant' | 'linear' | 'cosine';
  /** At most one of warmup_steps / warmup_ratio is non-zero. */
  warmup_steps: number;
  warmup_ratio: number;
  min_lr_ratio: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  max_grad_norm: number | null;
  // evaluation, saving, logging
  eval_steps: number | null;
  eval_max_samples: number;
  save_steps: number;
  save_total_limit: number;
  logging_steps: number;
}

/** A loaded task file: every key resolved, plus its recipe, its file and the source of each value. */
export type TaskConfig = Readonly<TaskValues> & {
  readonly recipe: Recipe;
  /** Absolute path of the task file. */
  readonly configFile: string;
  /** Source of each task key's value. */
  readonly sources: Readonly<Record<keyof TaskValues, ValueSource>>;
};
