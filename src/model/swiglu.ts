/**
 * SwiGLU's product (Shazeer 2020, arXiv:2002.05202; transformers `LlamaMLP`): `silu(gate) * up`,
 * silu(g) = g * sigmoid(g). Written in tfjs ops it is three kernels forward and about eight
 * backward, each a pass over `[tokens, intermediate]`, the widest activations of a layer.
 * `SWIGLU_KERNEL` (forward) and `SWIGLU_GRAD_KERNEL` (both gradients in one pass) are the op as
 * single kernels, which a backend may register together (the wasm backend's native kernels do);
 * elsewhere the tfjs ops run. Both compute, with s = sigmoid(g):
 *   act = g * s * u,  du = dy * g * s,  dg = dy * u * s * (1 + g * (1 - s))
 */
import * as tf from '@tensorflow/tfjs';

/** The fused kernel's name (mft's own). Inputs `gate`, `up` (same shape); output `silu(gate) * up`. */
export const SWIGLU_KERNEL = 'MftSwiGlu';
/** Its gradient: inputs `gate`, `up`, `dy`; outputs `[dGate, dUp]`. */
export const SWIGLU_GRAD_KERNEL = 'MftSwiGluGrad';

/**
 * `silu(gate) * up`, differentiable w.r.t. both.
 * @param gate `[..., intermediate]`
 * @param up the same shape
 * @example const act = swiglu(gate, up); // [B, T, intermediate]
 */
export function swiglu<T extends tf.Tensor>(gate: T, up: T): T {
  if (gate.dtype === 'float32' && tf.getKernel(SWIGLU_KERNEL, tf.getBackend()) !== undefined) {
    if (!tf.util.arraysEqual(gate.shape, up.shape)) {
      throw new Error(
        `Arguments 'gate' and 'up' passed to 'swiglu' must have one shape, got [${gate.shape}] and [${up.shape}]`,
      );
    }
    return tf.engine().runKernel(SWIGLU_KERNEL, { gate, up }, {}) as T;
  }
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as T);
}

tf.registerGradient({
  kernelName: SWIGLU_KERNEL,
  inputsToSave: ['gate', 'up'],
  gradFunc: (dy, saved) => {
    const [gate, up] = saved as [tf.Tensor, tf.Tensor];
    const [dGate, dUp] = tf
      .engine()
      .runKernel(SWIGLU_GRAD_KERNEL, { gate, up, dy: dy as tf.Tensor }, {}) as tf.Tensor[];
    return { gate: () => dGate as tf.Tensor, up: () => dUp as tf.Tensor };
  },
});
