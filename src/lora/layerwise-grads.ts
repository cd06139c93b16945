/**
 * Loss and LoRA gradients of one micro-batch, computed one decoder layer at a time
 * (gradient checkpointing at layer granularity; design.md "the memory model").
 *
 * Forward: embed, then each layer under tf.tidy, keeping only the layer inputs x_0..x_{L-1}.
 * Head:    g_L = d(lossScale * lossSum) / d x_L   (final RMSNorm + lm_head + cross-entropy).
 * Backward, for i = L-1 .. 0:
 *          materialise layer i's fp32 weights (dequantized here when the base is quantized),
 *          recompute y_i = layer_i(x_i) on a fresh tape and call a top-level tf.grads with the
 *          upstream gradient g_{i+1}:  [g_i, dA_i.., dB_i..] = grads(y_i, [x_i, A_i.., B_i..], g_{i+1}),
 *          dispose the layer, pass g_i down.
 * This is exact: the recompute sees the same inputs, weights and dropout masks (counter-based seeds),
 * so it equals one tape over the whole model. (A tf.grads nested in tf.customGrad crashes tfjs, so
 * the recompute cannot live inside a custom gradient; the loop drives it instead.)
 * Peak memory: one layer's weights and activations, plus the L kept layer inputs [B, T, hidden].
 *
 * `lossAndGrads` is a pure function of (model, LoRA values, batch, seeds): no hidden state, so
 * workers holding the same frozen weights can compute micro-batches in parallel.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../model/batch.js';
import {
  type AttentionContext,
  createAttentionContext,
  decoderLayer,
  embedTokens,
  headLossSum,
  type LoadedModel,
  type ModelLora,
  runLayers,
  trainingWeights,
  type WeightProvider,
  withLayer,
} from '../model/index.js';
import { fullTapeLossAndGrads } from './full-tape.js';
import type { LoraState } from './lora-state.js';
import { loraKey } from './targets.js';

/** Options of `lossAndGrads`. */
export interface LossAndGradsOptions {
  /** Gradients are of lossScale * lossSum (e.g. 1 / tokens of the whole optimizer step). */
  lossScale: number;
  /** Counter-based dropout seed of this micro-batch, mixSeed(runSeed, step, microBatch); absent = no dropout. */
  dropoutSeed?: number;
  /**
   * The batch is rows `[start, start + batchSize)` of a micro-batch of `total` rows (a worker's
   * share): dropout masks are that micro-batch's rows, so they do not depend on the split.
   */
  dropoutRows?: { start: number; total: number };
  /** true (default): recompute layer by layer; false: one tape over the whole model (more memory). */
  checkpointing?: boolean;
  /** Where the layer weights come from, owned by the caller (default: `trainingWeights`, for this call). */
  weights?: WeightProvider;
}

/** Loss of a micro-batch and the gradients of every LoRA variable. */
export interface LossAndGrads {
  /** Sum of the token cross-entropies (unscaled). */
  lossSum: number;
  /** Number of tokens that carry loss. */
  count: number;
  /** d(lossScale * lossSum) / d(variable), keyed like `LoraState.variables`; the caller disposes them. */
  grads: Map<string, tf.Tensor>;
}

/** PEFT keys of layer i's LoRA variables, in `LoraState.variables` order. */
function layerKeys(lora: LoraState, layer: number): string[] {
  return lora.config.targets.flatMap((name) => [loraKey(layer, name, 'A'), loraKey(layer, name, 'B')]);
}

/**
 * Loss and LoRA gradients of a micro-batch.
 * @param model frozen base (weights outside tfjs, dequantized layer by layer)
 * @param lora trainable LoRA variables (read, not changed)
 * @param batch packed rows [B, T]; labels -100 carry no loss
 * @param opts lossScale, dropoutSeed (training), checkpointing (default true)
 * @example const { lossSum, count, grads } = await lossAndGrads(model, lora, batch, { lossScale: 1 / stepTokens, dropoutSeed: mixSeed(seed, step, mb) });
 *          for (const g of grads.values()) g.dispose();
 */
export function lossAndGrads(
  model: LoadedModel,
  lora: LoraState,
  batch: Batch,
  opts: LossAndGradsOptions,
): Promise<LossAndGrads> {
  if (opts.checkpointing === false) return fullTapeLossAndGrads(model, lora, batch, opts);
  return layerwiseLossAndGrads(model, lora, batch, opts);
}

/** The checkpointed (layer-by-layer recompute) path of `lossAndGrads`. */
export async function layerwiseLossAndGrads(
  model: LoadedModel,
  lora: LoraState,
  batch: Batch,
  opts: LossAndGradsOptions,
): Promise<LossAndGrads> {
  const spec = model.spec;
  const numLayers = model.layers.length;
  const pass = trainingPass(model, lora, batch, opts);
  const { modelLora, ctx, weights } = pass;
  const inputs: tf.Tensor3D[] = [];
  const grads = new Map<string, tf.Tensor>();
  let upstream: tf.Tensor3D | null = null;
  let hL: tf.Tensor3D | null = null;
  try {
    // 1) forward, keeping only each layer's input x_i [B, T, hidden]
    hL = runLayers(model, embedTokens(model, batch), ctx, { weights, lora: modelLora, inputs });

    // 2) head: lossSum and g_L = d(lossScale * lossSum) / d x_L (dy = lossScale on the scalar loss)
    let count = 0;
    const hLast = hL;
    const head = tf.tidy(() =>
      tf.valueAndGrad((h: tf.Tensor3D) => {
        const r = headLossSum(model, h, batch.labels, { weights });
        count = r.count;
        return r.lossSum;
      })(hLast, tf.scalar(opts.lossScale)),
    );
    hL.dispose();
    const lossSum = (await head.value.data())[0]!;
    head.value.dispose();
    upstream = head.grad as tf.Tensor3D;

    // 3) backward, last layer first: recompute layer i, one top-level tf.grads per layer
    for (let i = numLayers - 1; i >= 0; i--) {
      const keys = layerKeys(lora, i);
      const vars = keys.map((k) => lora.variables.get(k)!);
      const xi = inputs[i]!;
      const dy = upstream as tf.Tensor3D; // set by the head, then by layer i + 1
      const needDx = i > 0; // the embedding is frozen: no gradient below layer 0
      const out = withLayer(weights, i, (w) =>
        tf.tidy(() =>
          // The LoRA variables are passed as the xs to differentiate against; decoderLayer reads the
          // same tensors through modelLora[i].
          tf.grads((...xs: tf.Tensor[]) =>
            decoderLayer(spec, i, needDx ? (xs[0] as tf.Tensor3D) : xi, w, ctx, modelLora[i]),
          )(needDx ? [xi, ...vars] : vars, dy),
        ),
      );
      inputs.pop()!.dispose(); // x_i
      dy.dispose();
      upstream = needDx ? (out.shift() as tf.Tensor3D) : null;
      for (const [j, k] of keys.entries()) grads.set(k, out[j]!);
    }
    return { lossSum, count, grads: orderLike(lora, grads) };
  } catch (e) {
    for (const g of grads.values()) g.dispose();
    throw e;
  } finally {
    tf.dispose(inputs);
    hL?.dispose();
    upstream?.dispose();
    pass.dispose();
  }
}

/** What both training passes hold for a micro-batch; `dispose` frees what the pass made. */
export interface TrainingPass {
  /** The adapters, with this micro-batch's dropout masks. */
  modelLora: ModelLora;
  ctx: AttentionContext;
  /** `opts.weights`, or one layer's fp32 weights at a time, made for this pass. */
  weights: WeightProvider;
  dispose(): void;
}

/** The adapters, attention context and layer weights of a training pass over `batch`. */
export function trainingPass(
  model: LoadedModel,
  lora: LoraState,
  batch: Batch,
  opts: LossAndGradsOptions,
): TrainingPass {
  const modelLora = lora.toModelLora(trainingDropout(batch, opts));
  const ctx = createAttentionContext(model.spec, batch);
  const weights = opts.weights ?? trainingWeights(model);
  return {
    modelLora,
    ctx,
    weights,
    dispose() {
      if (!opts.weights) weights.dispose();
      ctx.dispose();
    },
  };
}

/** The dropout of `toModelLora` for a training pass (none without a seed), rows in `[B * T, in]` units. */
function trainingDropout(
  batch: Batch,
  opts: LossAndGradsOptions,
): { stepSeed: number; rows?: { start: number; total: number } } | undefined {
  if (opts.dropoutSeed === undefined) return undefined;
  const r = opts.dropoutRows;
  if (!r) return { stepSeed: opts.dropoutSeed };
  return {
    stepSeed: opts.dropoutSeed,
    rows: { start: r.start * batch.seqLen, total: r.total * batch.seqLen },
  };
}

/** The gradients in `lora.variables` order (layer 0 first), whatever order they were computed in. */
function orderLike(lora: LoraState, grads: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const k of lora.variables.keys()) {
    const g = grads.get(k);
    if (g) out.set(k, g);
  }
  return out;
}
