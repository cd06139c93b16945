/**
 * RMSNorm in fp32 (Zhang & Sennrich 2019; transformers `LlamaRMSNorm`):
 *
 *   y = x * rsqrt(mean(x^2 over the last axis) + eps) * w
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Normalise the last axis of `x` and scale by `w`.
 * @param x `[..., hidden]`
 * @param w `[hidden]`
 * @param eps `rms_norm_eps` from config.json
 * @example
 *   const h = rmsNorm(x, w.input_layernorm, spec.rms_norm_eps); // [B, T, hidden]
 */
export function rmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D, eps: number): T {
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true); // [..., 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), w) as T;
  });
}
