/**
 * Softmax's gradient as one kernel where a backend has it. tfjs writes it as four kernels
 * (Softmax_grad.ts: `t = dy * y; dx = t - sum(t) * y`), each a pass over a tensor the size of the
 * attention scores; `SOFTMAX_GRAD` is the same formula in one pass, registered by backends that
 * have it (the wasm backend's native kernels). The gradient registered here uses it on such a
 * backend and tfjs's four kernels on every other, so model code keeps calling `tf.softmax`.
 */
import * as tf from '@tensorflow/tfjs';

/** The fused kernel's name (mft's own; not a tfjs kernel). Inputs `y` (softmax's output) and `dy`. */
export const SOFTMAX_GRAD = 'MftSoftmaxGrad';

tf.registerGradient({
  kernelName: tf.Softmax,
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    const [y] = saved as [tf.Tensor];
    const dyT = dy as tf.Tensor;
    const { dim } = attrs as unknown as tf.SoftmaxAttrs;
    const lastAxis = dim === -1 || dim === y.rank - 1;
    if (lastAxis && y.dtype === 'float32' && tf.getKernel(SOFTMAX_GRAD, tf.getBackend()) !== undefined) {
      return { logits: () => tf.engine().runKernel(SOFTMAX_GRAD, { y, dy: dyT }, {}) as tf.Tensor };
    }
    const dyTimesY = tf.mul(dyT, y);
    return { logits: () => tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [dim], true), y)) };
  },
});
