/**
 * Opening an adapter with its base, the same way for every command that takes `--adapter`
 * (eval, generate, merge): which directory the path means, how the base was stored while the
 * adapter trained (mft_training.json), and whether a base is the one it was trained on.
 */
import { join } from 'node:path';
import type { LoadModelOptions } from '../model/load.js';
import { MftError } from '../util/index.js';
import { resolveAdapterDir } from './adapter-dir.js';
import { loadAdapter, type PeftAdapter, TRAINING_INFO_FILE } from './peft-adapter.js';

export interface OpenedAdapter {
  adapter: PeftAdapter;
  /** The adapter directory itself (a run directory resolves to its adapter/ or checkpoint-N/). */
  dir: string;
  /** A line saying which adapter this is, e.g. "final adapter of run runs/x: runs/x/adapter". */
  description: string;
}

/**
 * The adapter `--adapter PATH [--checkpoint best|N]` means, read and checked.
 * @example const { adapter, dir } = openAdapter('checkpoints/runs/code', 'best');
 */
export function openAdapter(path: string, checkpoint?: string): OpenedAdapter {
  const { dir, description } = resolveAdapterDir(path, checkpoint);
  return { adapter: loadAdapter(dir), dir, description };
}

/** How the base was stored while the adapter trained, as load options ({} without mft_training.json). */
export function trainedBaseOptions(adapter: PeftAdapter): LoadModelOptions {
  const t = adapter.training;
  return t ? { quantization: t.quantization, doubleQuant: t.double_quant, precision: t.precision } : {};
}

/**
 * Fail (exit 2) when `base` is not the model the adapter was trained on: its config.json hashes
 * differently from the one mft_training.json recorded. Without mft_training.json there is nothing
 * to check; the shapes are checked when the LoRA weights are placed.
 */
export function checkTrainedBase(
  opened: Pick<OpenedAdapter, 'adapter' | 'dir'>,
  base: { dir: string; configHash: string },
): void {
  const t = opened.adapter.training;
  if (!t || t.config_hash === base.configHash) return;
  throw new MftError({
    where: join(opened.dir, TRAINING_INFO_FILE),
    message: `the adapter was trained on a different base (config hash ${t.config_hash}, ${base.dir} has ${base.configHash})`,
    fix: `use --model ${t.base_model}`,
  });
}
