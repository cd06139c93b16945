/**
 * The pieces of a forward pass that sit around the decoder layers: token embedding, and `forward`
 * (the whole model without gradients, layer by layer through `runLayers`, then the output head of
 * head.ts). The trainer's layer-wise backward pass is assembled from the same pieces.
 *
 *   x_0 = embed_tokens[input_ids];  x_{i+1} = layer_i(x_i);  logits = norm(x_L) lm_head^T
 */
import * as tf from '@tensorflow/tfjs';
import type { FrozenTensor } from '../weights/frozen-tensor.js';
import { StoredTensor } from '../weights/stored-tensor.js';
import { createAttentionContext } from './attention.js';
import type { Batch } from './batch.js';
import { OutputHead } from './head.js';
import type { ModelLora } from './linear.js';
import type { LoadedModel } from './loaded-model.js';
import { runLayers } from './run-layers.js';
import { trainingWeights, type WeightProvider } from './weight-provider.js';

/**
 * Rows of a frozen `[n, width]` matrix as fp32, row-major `[rows.length, width]`. A StoredTensor
 * widens only the rows asked for (the embedding of a 128K vocabulary is 2 GiB in fp32).
 */
export function frozenRows(t: FrozenTensor, rows: ArrayLike<number>): Float32Array {
  const [n, width] = t.shape as [number, number];
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k] as number;
    if (!Number.isInteger(r) || r < 0 || r >= n) {
      throw new Error(`token id ${r} is outside the vocabulary of ${t.name} [0, ${n})`);
    }
  }
  const out = new Float32Array(rows.length * width);
  if (t instanceof StoredTensor) {
    for (let k = 0; k < rows.length; k++) out.set(t.rowsToFloat32(rows[k] as number), k * width);
    return out;
  }
  const all = t.toFloat32();
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k] as number;
    out.set(all.subarray(r * width, (r + 1) * width), k * width);
  }
  return out;
}

/**
 * The input embeddings of a batch, built from rows outside tfjs (frozen: no gather gradient).
 * @returns `[B, T, hidden]`
 */
export function embedTokens(model: LoadedModel, batch: Batch): tf.Tensor3D {
  const rows = frozenRows(model.embed_tokens, batch.inputIds);
  return tf.tensor3d(rows, [batch.batchSize, batch.seqLen, model.spec.hidden_size]);
}

export interface ForwardOptions {
  /** Adapters to apply (no dropout: this is inference). */
  lora?: ModelLora;
  /** Also return every logit, row-major `[B, T, vocab]`. */
  returnLogits?: boolean;
  /** Rows of lm_head + loss computed at once (default: about 2^24 logits per chunk). */
  chunkSize?: number;
  /**
   * Where the layer weights come from (default: `trainingWeights`, one layer's fp32 weights at a
   * time, made for this call and freed after it).
   */
  weights?: WeightProvider;
}

export interface ForwardResult {
  /** Sum of the token cross-entropies over labels != -100. */
  lossSum: number;
  /** Number of tokens that carry loss. */
  count: number;
  logits?: Float32Array;
}

/**
 * The whole model on a batch, without gradients (by default one layer's fp32 weights at a time).
 * @example
 *   const { lossSum, count } = await forward(model, batch); // eval loss = lossSum / count
 */
export async function forward(
  model: LoadedModel,
  batch: Batch,
  opts: ForwardOptions = {},
): Promise<ForwardResult> {
  const ctx = createAttentionContext(model.spec, batch);
  const own = opts.weights ? null : trainingWeights(model);
  const weights = opts.weights ?? own!;
  const head = new OutputHead(model, weights);
  let x: tf.Tensor3D | null = null;
  try {
    x = runLayers(model, embedTokens(model, batch), ctx, { weights, lora: opts.lora }); // [B, T, hidden]
    const loss = head.lossSum(x, batch.labels, opts.chunkSize);
    const lossSum = (await loss.lossSum.data())[0] as number;
    loss.lossSum.dispose();
    const result: ForwardResult = { lossSum, count: loss.count };
    if (opts.returnLogits) {
      const logits = head.allLogits(x);
      result.logits = (await logits.data()) as Float32Array;
      logits.dispose();
    }
    return result;
  } finally {
    x?.dispose();
    own?.dispose();
    head.dispose();
    ctx.dispose();
  }
}
