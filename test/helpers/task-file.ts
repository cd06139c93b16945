import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

type TaskValues = Record<string, string | number | boolean>;

/** Write a flat task file, one `key: value` line per entry; returns `path`. */
export function writeTaskFile(path: string, keys: TaskValues): string {
  const lines = Object.entries(keys).map(([k, v]) => `${k}: ${v}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/**
 * `dir/name.yaml`: a small LoRA training run of `base` on `./data.jsonl` (wasm, 48-token rows,
 * 10 steps of 2 x 2 rows, r 4, dropout 0.1, checkpoints every 2 steps); `extra` overrides or adds keys.
 */
export function writeTrainingTask(dir: string, name: string, base: string, extra: TaskValues = {}): string {
  return writeTaskFile(join(dir, `${name}.yaml`), {
    task: 'text',
    dataset: './data.jsonl',
    base_model: base,
    backend: 'wasm',
    sequence_len: 48,
    micro_batch_size: 2,
    gradient_accumulation_steps: 2,
    max_steps: 10,
    learning_rate: 0.01,
    lora_r: 4,
    lora_alpha: 8,
    lora_dropout: 0.1,
    val_set_size: 4,
    eval_max_samples: 2,
    save_steps: 2,
    logging_steps: 1,
    cache_dir: './cache',
    ...extra,
  });
}
