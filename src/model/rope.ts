/**
 * Rotary position embeddings in the Hugging Face convention (`rotate_half` over the two halves of
 * each head, not Meta's interleaved pairs), with `rope_theta` and the `linear` / `llama3` frequency
 * scalings of transformers' `modeling_rope_utils.py`.
 *
 *   inv_freq[i] = 1 / rope_theta^(2i / head_dim)                 i = 0 .. head_dim/2 - 1
 *   angle[t, i] = position[t] * inv_freq[i];  cos/sin = [cos(angle), cos(angle)] (both halves)
 *   rope(x)     = x * cos + rotate_half(x) * sin,   rotate_half([x1, x2]) = [-x2, x1]
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelSpec } from './spec.js';

/**
 * The per-pair rotation frequencies, scaled as `spec.rope_scaling` says (float64).
 * @returns length head_dim / 2
 */
export function ropeInvFreq(spec: Pick<ModelSpec, 'head_dim' | 'rope_theta' | 'rope_scaling'>): Float64Array {
  const half = spec.head_dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / spec.rope_theta ** ((2 * i) / spec.head_dim);
  const s = spec.rope_scaling;
  if (s === null) return inv;
  if (s.rope_type === 'linear') {
    // Linear (position interpolation): positions / factor, i.e. every frequency / factor.
    return inv.map((f) => f / s.factor);
  }
  // llama3: long wavelengths (low frequencies) are divided by `factor`, short ones kept, and the
  // band between is interpolated smoothly (transformers `_compute_llama3_parameters`).
  const oldLen = s.original_max_position_embeddings;
  const lowFreqWavelen = oldLen / s.low_freq_factor;
  const highFreqWavelen = oldLen / s.high_freq_factor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / s.factor;
    const smooth = (oldLen / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/**
 * cos / sin tables for the given positions, laid out to broadcast over heads.
 * @param positionIds row-major `[batchSize, seqLen]`
 * @returns `cos`, `sin` of shape `[batchSize, 1, seqLen, head_dim]` (the caller disposes them)
 */
export function ropeTables(
  spec: Pick<ModelSpec, 'head_dim' | 'rope_theta' | 'rope_scaling'>,
  positionIds: Int32Array,
  batchSize: number,
  seqLen: number,
): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const D = spec.head_dim;
  const half = D / 2;
  const inv = ropeInvFreq(spec);
  const cos = new Float32Array(batchSize * seqLen * D);
  const sin = new Float32Array(batchSize * seqLen * D);
  for (let n = 0; n < batchSize * seqLen; n++) {
    const pos = positionIds[n] as number;
    for (let i = 0; i < half; i++) {
      const angle = pos * (inv[i] as number);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[n * D + i] = c;
      cos[n * D + half + i] = c;
      sin[n * D + i] = s;
      sin[n * D + half + i] = s;
    }
  }
  const shape: [number, number, number, number] = [batchSize, 1, seqLen, D];
  return { cos: tf.tensor4d(cos, shape), sin: tf.tensor4d(sin, shape) };
}

/**
 * The `[D, D]` matrix R with `x R = rotate_half(x)`: column j < D/2 takes -x[j + D/2], column
 * j >= D/2 takes x[j - D/2]. Its transpose is -R.
 */
function rotationMatrix(D: number, sign: 1 | -1): tf.Tensor2D {
  const half = D / 2;
  const r = new Float32Array(D * D);
  for (let j = 0; j < half; j++) {
    r[(j + half) * D + j] = -sign;
    r[j * D + j + half] = sign;
  }
  return tf.tensor2d(r, [D, D]);
}

/**
 * `[x1, x2] -> [-x2, x1]` over the last axis, as one product with a signed permutation matrix
 * (gradient: the product with its transpose, -R). Each output is one input times +-1 plus zeros, so
 * it is exact; and it is one matrix kernel where a split and a concat over the last axis are two
 * strided copies (the split alone was 5% of a training step on wasm).
 */
export function rotateHalf(x: tf.Tensor4D): tf.Tensor4D {
  const D = x.shape[3];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    const rotate = (t: tf.Tensor, sign: 1 | -1) =>
      tf.tidy(() => tf.reshape(tf.matMul(tf.reshape(t, [-1, D]), rotationMatrix(D, sign)), t.shape));
    return {
      value: rotate(xi, 1) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor4D) => [rotate(dy, -1)],
    };
  });
  return op(x) as tf.Tensor4D;
}

/**
 * Rotate queries or keys: `x * cos + rotate_half(x) * sin`.
 * @param x `[B, heads, T, head_dim]`
 * @param cos `[B, 1, T, head_dim]` from `ropeTables`
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
}
