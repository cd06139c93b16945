/**
 * Masked scaled dot-product attention with grouped key/value heads, and the per-batch context the
 * decoder layers share (RoPE tables and masks).
 *
 * The mask (transformers `masking_utils`): query i sees key j only when
 *   j <= i                       causal
 *   segment[j] == segment[i]     same packed document (pads form their own segment)
 *   i - W < j                    sliding window W, when the layer has one (W tokens, itself included)
 *
 *   attention(q, k, v) = softmax(q k^T / sqrt(head_dim) + mask) v
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from './batch.js';
import { flexibleMatMul } from './matmul-form.js';
import { ropeTables } from './rope.js';
import type { ModelSpec } from './spec.js';

/** Added to the score of a masked pair: exp underflows to exactly 0 in fp32, no -Infinity NaNs. */
export const MASKED = -1e9;

/**
 * What every decoder layer of one forward pass shares: RoPE tables for the query positions, the
 * additive masks, and where keys/values come from (this batch alone, or a generation KV cache).
 */
export interface AttentionContext {
  readonly batchSize: number;
  /** Query length T of this pass. */
  readonly seqLen: number;
  /** `[B, 1, T, head_dim]` for the query (and new key) positions. */
  readonly cos: tf.Tensor4D;
  readonly sin: tf.Tensor4D;
  /** Additive mask `[B, 1, T, S]` (0 or MASKED) for layer `layerIndex`; S = number of keys. */
  mask(layerIndex: number): tf.Tensor4D;
  /**
   * The keys/values layer `layerIndex` attends to, given this pass's new ones `[B, kv_heads, T, head_dim]`:
   * the same tensors in training, the cache with them appended in generation.
   */
  keysValues(layerIndex: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D };
  /** Free the tables and masks. */
  dispose(): void;
}

/**
 * The context of a training / evaluation batch: masks built from `segmentIds` and the layers'
 * sliding windows, RoPE from `positionIds` (positions restart at each packed document).
 * Create it outside `tf.tidy` (or keep it) and `dispose()` it when the batch is done.
 * @example
 *   const ctx = createAttentionContext(model.spec, batch);
 *   try { x = decoderLayer(model.spec, 0, x, w, ctx); } finally { ctx.dispose(); }
 */
export function createAttentionContext(spec: ModelSpec, batch: Batch): AttentionContext {
  const { batchSize: B, seqLen: T } = batch;
  const { cos, sin } = ropeTables(spec, batch.positionIds, B, T);
  const masks = new Map<number | null, tf.Tensor4D>();
  for (const W of new Set(spec.sliding_window)) {
    masks.set(W, tf.tensor4d(batchMask(batch.segmentIds, B, T, W), [B, 1, T, T]));
  }
  return {
    batchSize: B,
    seqLen: T,
    cos,
    sin,
    mask: (i) => masks.get(spec.sliding_window[i] ?? null) as tf.Tensor4D,
    keysValues: (_i, k, v) => ({ k, v }),
    dispose: () => {
      cos.dispose();
      sin.dispose();
      for (const m of masks.values()) m.dispose();
    },
  };
}

/**
 * The additive mask of packed rows, row-major `[B, T, T]`.
 * @param window sliding window W, or null for full causal attention
 */
export function batchMask(segmentIds: Int32Array, B: number, T: number, window: number | null): Float32Array {
  const mask = new Float32Array(B * T * T).fill(MASKED);
  for (let b = 0; b < B; b++) {
    const seg = segmentIds.subarray(b * T, (b + 1) * T);
    for (let i = 0; i < T; i++) {
      const first = window === null ? 0 : Math.max(0, i - window + 1);
      const row = (b * T + i) * T;
      for (let j = first; j <= i; j++) if (seg[j] === seg[i]) mask[row + j] = 0;
    }
  }
  return mask;
}

/**
 * Masked attention with GQA. Instead of repeating each key/value head n_rep times (HF's
 * `repeat_kv`), the n_rep query heads that share a key/value head are stacked along the query axis,
 * which is the same maths without copying k and v.
 * @param q `[B, n_heads, T, D]` (rotated)
 * @param k `[B, kv_heads, S, D]` (rotated)
 * @param v `[B, kv_heads, S, D]`
 * @param mask `[B, 1, T, S]` additive
 * @returns `[B, n_heads, T, D]`
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, H, T, D] = q.shape;
    const [, KV, S] = k.shape;
    const nRep = H / KV;
    // Scale q rather than the scores: S / D times fewer multiplies, forward and backward.
    const qs = tf.mul(q, 1 / Math.sqrt(D)); // [B, H, T, D]
    if (nRep * T * S * D < LOOP_MIN_MACS || flexibleMatMul()) {
      const qg = tf.reshape(qs, [B, KV, nRep * T, D]); // [B, KV, n_rep*T, D] (head h = kv * n_rep + r)
      const scores = tf.matMul(qg, k, false, true); // [B, KV, n_rep*T, S]
      const masked = tf.add(tf.reshape(scores, [B, H, T, S]), mask); // [B, H, T, S]
      const probs = tf.softmax(masked); // [B, H, T, S]
      const out = tf.matMul(tf.reshape(probs, [B, KV, nRep * T, S]), v); // [B, KV, n_rep*T, D]
      return tf.reshape(out, [B, H, T, D]);
    }
    const n = B * KV;
    const qg: tf.Tensor3D = tf.reshape(qs, [n, nRep * T, D]); // [B*KV, n_rep*T, D]
    const kT = tf.transpose(tf.reshape(k, [n, S, D]), [0, 2, 1]); // [B*KV, D, S]
    const scores = planeMatMul(qg, kT as tf.Tensor3D); // [B*KV, n_rep*T, S]
    const probs = tf.softmax(tf.add(tf.reshape(scores, [B, H, T, S]), mask)); // [B, H, T, S]
    const out = planeMatMul(tf.reshape(probs, [n, nRep * T, S]), tf.reshape(v, [n, S, D])); // [B*KV, n_rep*T, D]
    return tf.reshape(out, [B, H, T, D]);
  });
}

/**
 * Multiply-adds per (batch, kv head) product from which `attention` runs the products as plain 2-D
 * matMuls (unless the kernels run batched products at full speed, matmul-form.ts). wasm's batched or transposed matMul is about 10x slower than its plain 2-D one, but each
 * 2-D call on fresh operands, and the split into planes, has a fixed cost that dominates small
 * products. Measured fwd+bwd on wasm: 1.5-2.8x faster at 2^23 and above (head_dim 16 x 512
 * positions, 64 x 256, 128 x 256), neutral to 4x slower below (head_dim 8..128 x 128 positions).
 */
const LOOP_MIN_MACS = 2 ** 23;

/** `a [n, M, K] x b [n, K, N]` as n plain 2-D matMuls; its gradient is plain 2-D matMuls too. */
function planeMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor3D;
    const y = args[1] as tf.Tensor3D;
    (args[2] as tf.GradSaveFunc)([x, y]);
    const gradFunc = (dy: tf.Tensor3D, saved: tf.Tensor[]) => {
      const [xs, ys] = saved as [tf.Tensor3D, tf.Tensor3D];
      return tf.tidy(() => {
        const dys = planes(dy);
        return [
          planeProducts(dys, planes(tf.transpose(ys, [0, 2, 1]))), // dx = dy y^T
          planeProducts(planes(tf.transpose(xs, [0, 2, 1])), dys), // dy' = x^T dy
        ];
      });
    };
    return { value: planeProducts(planes(x), planes(y)), gradFunc };
  });
  return op(a, b) as tf.Tensor3D;
}

/** The n matrices of `[n, M, K]`, each `[M, K]`. */
function planes(t: tf.Tensor): tf.Tensor2D[] {
  const [n, M, K] = t.shape as [number, number, number];
  return tf.split(tf.reshape(t, [n * M, K]), n, 0) as tf.Tensor2D[];
}

/** `[n, M, N]` from n products `as[i] [M, K] x bs[i] [K, N]`. */
function planeProducts(as: tf.Tensor2D[], bs: tf.Tensor2D[]): tf.Tensor3D {
  const outs = as.map((x, i) => tf.matMul(x, bs[i] as tf.Tensor2D));
  const [M, N] = (outs[0] as tf.Tensor2D).shape;
  return tf.reshape(tf.concat(outs, 0), [outs.length, M, N]);
}
