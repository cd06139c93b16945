/**
 * Opening an adapter with its base, the same way for every command that takes `--adapter`
 * (eval, generate, merge): which directory the path means, how the base was stored while the
 * adapter trained (mft_training.json), whether a base is the one it was trained on, and whether
 * the LoRA factors fit its weights.
 */
import { join } from 'node:path';
import type { LoadModelOptions } from '../model/load.js';
import { MftError, type Problem } from '../util/index.js';
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

/**
 * Problems of the LoRA factors of one base weight `W [out, in]`: both must be present, in PEFT's
 * shapes `lora_A [r, in]` and `lora_B [out, r]` (r from adapter_config.json).
 * @param file the adapter's weights file, as the problems name it
 * @param aKey the lora_A key (lora_B's is the same with lora_B)
 * @param base the weight the factors adapt, by its checkpoint name
 * @returns one problem per factor that is missing or does not fit (empty when both fit)
 * @example const problems = loraShapeProblems(adapter, 'adapter_model.safetensors', key, { name, shape: [out, inp] });
 */
export function loraShapeProblems(
  adapter: PeftAdapter,
  file: string,
  aKey: string,
  base: { name: string; shape: readonly number[] },
): Problem[] {
  const r = Number(adapter.config.r);
  const trainedOn = adapter.config.base_model_name_or_path;
  const fix = `use the base model the adapter was trained on${trainedOn ? ` (${trainedOn})` : ''} (adapter_config.json base_model_name_or_path)`;
  const bKey = aKey.replace(/\.lora_A\.weight$/, '.lora_B.weight');
  if (base.shape.length !== 2) {
    return [
      {
        where: `${file}: ${aKey}`,
        message: `${base.name} [${base.shape.join(', ')}] is not a 2-D weight`,
        fix,
      },
    ];
  }
  const [out, inp] = base.shape as [number, number];
  const problems: Problem[] = [];
  for (const [key, expected] of [
    [aKey, [r, inp]],
    [bKey, [out, r]],
  ] as const) {
    const t = adapter.tensors.get(key);
    if (!t) {
      problems.push({ where: `${file}: ${key}`, message: 'missing', fix });
    } else if (t.shape.length !== 2 || t.shape[0] !== expected[0] || t.shape[1] !== expected[1]) {
      problems.push({
        where: `${file}: ${key}`,
        message: `shape [${t.shape.join(', ')}] does not fit the base model: expected [${expected.join(', ')}] for ${base.name} [${out}, ${inp}]`,
        fix,
      });
    }
  }
  return problems;
}
