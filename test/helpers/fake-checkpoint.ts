import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A checkpoint-<step>/ folder in `run` as the trainer lays it out: the adapter files of `adapter`
 * and a trainer_state.json naming the best step so far (null: no evaluation ran).
 * @example writeCheckpoint(run, 10, 5, 'test/fixtures/llama-golden/adapter');
 */
export function writeCheckpoint(run: string, step: number, best: number | null, adapter: string): string {
  const d = join(run, `checkpoint-${step}`);
  mkdirSync(d, { recursive: true });
  for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
    copyFileSync(join(adapter, f), join(d, f));
  writeFileSync(
    join(d, 'trainer_state.json'),
    JSON.stringify({ step, best_step: best, best_eval_loss: best === null ? null : 1.5 }),
  );
  return d;
}
