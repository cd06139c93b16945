/**
 * RMSNorm in fp32 (Zhang & Sennrich 2019; transformers `LlamaRMSNorm`):
 *
 *   y = x * rsqrt(mean(x^2 over the last axis) + eps) * w
 *
 * `RMS_NORM_KERNEL` (forward) and `RMS_NORM_GRAD_KERNEL` (the gradient for x) are the op as
 * single kernels, which a backend may register together (the wasm backend's native kernels do);
 * elsewhere the tfjs ops run (six forward, about twelve backward). With r = rsqrt(mean(x^2) + eps):
 *   dx = r * (w * dy) - x * r^3 * mean(w * dy * x)
 */
import * as tf from '@tensorflow/tfjs';

/** The fused kernel's name (mft's own). Inputs `x` `[..., hidden]`, `w` `[hidden]`; attr `eps`. */
export const RMS_NORM_KERNEL = 'MftRmsNorm';
/** Its gradient for `x`: inputs `x`, `w`, `dy`; attr `eps`. */
export const RMS_NORM_GRAD_KERNEL = 'MftRmsNormGrad';

/**
 * Normalise the last axis of `x` and scale by `w`.
 * @param x `[..., hidden]`
 * @param w `[hidden]`
 * @param eps `rms_norm_eps` from config.json
 * @example
 *   const h = rmsNorm(x, w.input_layernorm, spec.rms_norm_eps); // [B, T, hidden]
 */
export function rmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D, eps: number): T {
  const hidden = x.shape[x.rank - 1];
  if (
    x.dtype === 'float32' &&
    w.size === hidden &&
    tf.getKernel(RMS_NORM_KERNEL, tf.getBackend()) !== undefined
  ) {
    return tf.engine().runKernel(RMS_NORM_KERNEL, { x, w }, { eps }) as T;
  }
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true); // [..., 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), w) as T;
  });
}

tf.registerGradient({
  kernelName: RMS_NORM_KERNEL,
  inputsToSave: ['x', 'w'],
  gradFunc: (dy, saved, attrs) => {
    const [x, w] = saved as [tf.Tensor, tf.Tensor1D];
    const { eps } = attrs as unknown as { eps: number };
    return {
      x: () =>
        tf.engine().runKernel(RMS_NORM_GRAD_KERNEL, { x, w, dy: dy as tf.Tensor }, { eps }) as tf.Tensor,
      // The norms' weights are frozen (no tape asks for this); for completeness, in tfjs ops.
      w: () =>
        tf.tidy(() => {
          const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps));
          const perRow = tf.reshape(tf.mul(tf.mul(dy as tf.Tensor, x), r), [-1, w.size]);
          return tf.sum(perRow, 0);
        }),
    };
  },
});
