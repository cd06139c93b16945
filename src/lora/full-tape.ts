/**
 * Loss and LoRA gradients with one tape over the whole model (`gradient_checkpointing: false`).
 * Every layer's activations (and its fp32 weights) stay alive until the backward pass ends, so
 * memory grows with the number of layers; in exchange no layer is computed twice.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../model/batch.js';
import { embedTokens, headLossSum, type LoadedModel, runLayers } from '../model/index.js';
import { type LossAndGrads, type LossAndGradsOptions, trainingPass } from './layerwise-grads.js';
import type { LoraState } from './lora-state.js';

/**
 * `lossAndGrads` without recomputation: forward through every layer on one tape, then one tf.grads.
 * @param model frozen base
 * @param lora trainable LoRA variables
 * @param batch packed rows [B, T]
 * @param opts lossScale, dropoutSeed (checkpointing is ignored: this is the non-checkpointed path)
 * @example const { lossSum, grads } = await fullTapeLossAndGrads(model, lora, batch, { lossScale: 1 });
 */
export async function fullTapeLossAndGrads(
  model: LoadedModel,
  lora: LoraState,
  batch: Batch,
  opts: LossAndGradsOptions,
): Promise<LossAndGrads> {
  const pass = trainingPass(model, lora, batch, opts);
  const { modelLora, ctx, weights } = pass;
  const keys = [...lora.variables.keys()];
  const vars = keys.map((k) => lora.variables.get(k)!);
  let count = 0;
  try {
    const { value, grads } = tf.tidy(() =>
      // The variables are the xs; the forward reads the same tensors through modelLora.
      tf.valueAndGrads((..._xs: tf.Tensor[]) => {
        // On the tape: the layer weights and activations live until the enclosing tidy ends.
        const x = runLayers(model, embedTokens(model, batch), ctx, {
          weights,
          lora: modelLora,
          onTape: true,
        }); // [B, T, hidden]
        const r = headLossSum(model, x, batch.labels, { weights });
        count = r.count;
        return r.lossSum;
      })(vars, tf.scalar(opts.lossScale)),
    );
    const lossSum = (await value.data())[0]!;
    value.dispose();
    return { lossSum, count, grads: new Map(keys.map((k, j) => [k, grads[j]!])) };
  } finally {
    pass.dispose();
  }
}
