/**
 * The pieces of a forward pass that sit around the decoder layers: token embedding, the output
 * head with its loss, and `forward` (the whole model without gradients, layer by layer through
 * `runLayers`). The trainer's layer-wise backward pass is assembled from the same pieces.
 *
 *   x_0 = embed_tokens[input_ids];  x_{i+1} = layer_i(x_i);  logits = norm(x_L) lm_head^T
 */
import * as tf from '@tensorflow/tfjs';
import type { FrozenTensor } from '../weights/frozen-tensor.js';
import { StoredTensor } from '../weights/stored-tensor.js';
import { createAttentionContext } from './attention.js';
import type { Batch } from './batch.js';
import { IGNORE_INDEX } from './batch.js';
import { lmHeadCrossEntropySum } from './cross-entropy.js';
import type { ModelLora } from './linear.js';
import type { LoadedModel } from './loaded-model.js';
import { rmsNorm } from './rms-norm.js';
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

export interface HeadOptions {
  /** Rows of lm_head + loss computed at once (default: about 2^24 logits per chunk). */
  chunkSize?: number;
  /** A provider that keeps the head's weights (`WeightProvider.head`); else widened from storage. */
  weights?: WeightProvider;
}

/**
 * Final RMSNorm, lm_head and the summed cross-entropy, over chunks of the sequence so that the
 * logits held at once stay bounded. Differentiable w.r.t. `h`.
 * @param h `[B, T, hidden]` output of the last decoder layer
 * @param labels row-major `[B, T]`, -100 carries no loss
 * @returns `lossSum` (scalar tensor, the caller disposes it) and `count`, the tokens that carry loss
 * @example
 *   const { lossSum, count } = headLossSum(model, h, batch.labels); // mean = lossSum / count
 */
export function headLossSum(
  model: LoadedModel,
  h: tf.Tensor3D,
  labels: Int32Array,
  opts: HeadOptions = {},
): { lossSum: tf.Scalar; count: number } {
  const [B, T, hidden] = h.shape;
  if (labels.length !== B * T) {
    throw new Error(
      `Argument 'labels' passed to 'headLossSum' must have ${B * T} entries, got ${labels.length}`,
    );
  }
  let count = 0;
  for (const l of labels) if (l !== IGNORE_INDEX) count++;
  const lossSum = tf.tidy(() => {
    const kept = opts.weights?.head?.();
    const norm = kept?.norm ?? tf.tensor1d(model.norm.toFloat32()); // [hidden]
    const weight = kept?.lm_head ?? tf.tensor2d(model.lm_head.toFloat32(), [model.spec.vocab_size, hidden]); // [V, hidden]
    const normed = rmsNorm(h, norm, model.spec.rms_norm_eps); // [B, T, hidden]
    return lmHeadCrossEntropySum(tf.reshape(normed, [B * T, hidden]), weight, labels, opts.chunkSize);
  });
  return { lossSum, count };
}

/**
 * Final RMSNorm and lm_head: all logits `[B, T, vocab]` (for small inputs: generation's last
 * position, tests). Use `headLossSum` for a loss.
 */
export function headLogits(model: LoadedModel, h: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, T, hidden] = h.shape;
    const normed = rmsNorm(h, tf.tensor1d(model.norm.toFloat32()), model.spec.rms_norm_eps); // [B, T, hidden]
    const weight = tf.tensor2d(model.lm_head.toFloat32(), [model.spec.vocab_size, hidden]); // [V, hidden]
    const logits = tf.matMul(tf.reshape(normed, [B * T, hidden]), tf.transpose(weight)); // [B*T, V]
    return tf.reshape(logits, [B, T, model.spec.vocab_size]);
  });
}

export interface ForwardOptions {
  /** Adapters to apply (no dropout: this is inference). */
  lora?: ModelLora;
  /** Also return every logit, row-major `[B, T, vocab]`. */
  returnLogits?: boolean;
  /** See HeadOptions. */
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
  let x: tf.Tensor3D | null = null;
  try {
    const weights = opts.weights ?? own!;
    x = runLayers(model, embedTokens(model, batch), ctx, { weights, lora: opts.lora }); // [B, T, hidden]
    const head = headLossSum(model, x, batch.labels, { chunkSize: opts.chunkSize, weights });
    const lossSum = (await head.lossSum.data())[0] as number;
    head.lossSum.dispose();
    const result: ForwardResult = { lossSum, count: head.count };
    if (opts.returnLogits) {
      const logits = headLogits(model, x);
      result.logits = (await logits.data()) as Float32Array;
      logits.dispose();
    }
    return result;
  } finally {
    x?.dispose();
    own?.dispose();
    ctx.dispose();
  }
}
