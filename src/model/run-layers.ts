/**
 * The decoder stack, the one loop every pass runs (training, its recompute, evaluation, `mft eval`,
 * generation):  x_{i+1} = layer_i(x_i),  i = 0 .. L-1,  weights from a `WeightProvider`.
 * The caller embeds (`embedTokens`), builds the attention context (a batch's masks, or a KV cache's
 * step, one cache per row for a batched decode) and runs the head on the result.
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionContext } from './attention.js';
import { decoderLayer } from './decoder-layer.js';
import type { BatchLayerLora, LayerLora } from './linear.js';
import type { LoadedModel } from './loaded-model.js';
import { type WeightProvider, withLayer } from './weight-provider.js';

export interface RunLayersOptions {
  weights: WeightProvider;
  /** Adapters to apply (with dropout when they were built for training). */
  lora?: readonly (LayerLora | BatchLayerLora | undefined)[];
  /**
   * Collects each layer's input x_0 .. x_{L-1} (the layer-wise backward recomputes from them);
   * without it each input is freed once the layer has run.
   */
  inputs?: tf.Tensor3D[];
  /**
   * Inside a gradient tape: nothing is freed here, the layer weights included; the enclosing
   * tf.tidy frees it all after the backward pass.
   */
  onTape?: boolean;
}

/**
 * Run every decoder layer on `x` `[B, T, hidden]`.
 * @param x the embeddings; consumed (freed or collected in `opts.inputs`)
 * @returns the last layer's output `[B, T, hidden]` (the caller disposes it)
 * @example
 *   const h = runLayers(model, embedTokens(model, batch), ctx, { weights: streamedWeights(model) });
 */
export function runLayers(
  model: LoadedModel,
  x: tf.Tensor3D,
  ctx: AttentionContext,
  opts: RunLayersOptions,
): tf.Tensor3D {
  const { spec } = model;
  const { weights, lora, inputs } = opts;
  if (opts.onTape) {
    for (let i = 0; i < model.layers.length; i++)
      x = decoderLayer(spec, i, x, weights.layer(i), ctx, lora?.[i]);
    return x;
  }
  try {
    for (let i = 0; i < model.layers.length; i++) {
      inputs?.push(x);
      const xi = x;
      const y = withLayer(weights, i, (w) => tf.tidy(() => decoderLayer(spec, i, xi, w, ctx, lora?.[i]))); // [B, T, hidden]
      if (!inputs) x.dispose();
      x = y;
    }
    return x;
  } catch (e) {
    if (!inputs) x.dispose(); // collected inputs are the caller's to free
    throw e;
  }
}
