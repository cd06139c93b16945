/**
 * The real model side of a run: the frozen base plus its LoRA variables, seen through the
 * `Trainable` interface the loop drives (gradients per micro-batch, eval loss, adapter files).
 */
import * as tf from '@tensorflow/tfjs';
import {
  type LoraState,
  loadAdapter,
  loraToAdapter,
  lossAndGrads,
  type MftTrainingInfo,
  saveAdapter,
} from '../lora/index.js';
import { forward, type LoadedModel, type WeightProvider } from '../model/index.js';
import { MftError } from '../util/index.js';
import type { Trainable } from './train.js';

/**
 * Wrap a base model and its LoRA state for the loop.
 * @param model the frozen base (maybe quantized)
 * @param lora the trainable adapters (owned by the caller)
 * @param opts.checkpointing `gradient_checkpointing`: layer-by-layer recompute (true) or one tape
 * @param opts.training the `mft_training.json` record saved with every adapter
 * @param opts.weights where the layer weights come from (`trainingWeights(model)`, owned by the
 *   caller; default: one made for each call)
 * @example const trainable = loraTrainable(model, lora, {checkpointing: config.gradient_checkpointing, training, weights});
 */
export function loraTrainable(
  model: LoadedModel,
  lora: LoraState,
  opts: { checkpointing: boolean; training: MftTrainingInfo; weights?: WeightProvider },
): Trainable {
  const { checkpointing, training, weights } = opts;
  return {
    variables: lora.variables,
    lossAndGrads: (batch, opts) => lossAndGrads(model, lora, batch, { ...opts, checkpointing, weights }),
    evalLoss: async (batch) => {
      const r = await forward(model, batch, { lora: lora.toModelLora(), weights });
      return { lossSum: r.lossSum, count: r.count };
    },
    adapterWriter: async () => {
      const adapter = await loraToAdapter(lora, { training });
      return (dir) => saveAdapter(dir, adapter);
    },
    loadAdapter: (dir) => assignFromAdapter(lora, dir),
  };
}

/** Set every LoRA variable to the tensor of the same PEFT key in the adapter saved in `dir`. */
function assignFromAdapter(lora: LoraState, dir: string): void {
  const adapter = loadAdapter(dir);
  const c = lora.config;
  const problems = [];
  if (
    adapter.config.r !== c.r ||
    adapter.config.lora_alpha !== c.alpha ||
    adapter.config.use_rslora !== c.useRslora
  ) {
    problems.push({
      where: `${dir}/adapter_config.json`,
      message: `r ${adapter.config.r}, lora_alpha ${adapter.config.lora_alpha}, use_rslora ${adapter.config.use_rslora} differ from the run's (${c.r}, ${c.alpha}, ${c.useRslora})`,
      fix: 'resume with the settings the checkpoint was trained with',
    });
  }
  for (const [key, v] of lora.variables) {
    const t = adapter.tensors.get(key);
    if (!t || t.data.length !== v.size) {
      problems.push({
        where: `${dir}/adapter_model.safetensors: ${key}`,
        message: t ? `shape [${t.shape.join(', ')}], the run has [${v.shape.join(', ')}]` : 'missing',
        fix: 'resume with the settings the checkpoint was trained with (lora_r, lora_target_modules)',
      });
    }
  }
  for (const key of adapter.tensors.keys()) {
    if (!lora.variables.has(key)) {
      problems.push({
        where: `${dir}/adapter_model.safetensors: ${key}`,
        message: 'not a LoRA weight of this run',
        fix: 'resume with the settings the checkpoint was trained with (lora_target_modules)',
      });
    }
  }
  if (problems.length > 0) throw new MftError(problems);
  for (const [key, v] of lora.variables) {
    const data = adapter.tensors.get(key)!.data;
    tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
  }
}
