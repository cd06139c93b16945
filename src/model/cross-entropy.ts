/**
 * Next-token cross-entropy as a custom-gradient op. The forward never builds a one-hot of
 * `[tokens, vocab]` (the picked logit is read with a forward-only gather), and the gradient is
 * written by hand because tfjs's `gather` gradient has no wasm kernel:
 *
 *   loss      = sum over tokens with label != -100 of  logsumexp(z) - z[label]
 *   dloss/dz  = softmax(z) - onehot(label)      (zero for ignored tokens)
 *
 * It returns the SUM; the trainer divides by the number of loss tokens of the whole step.
 * The output head's fused, chunked form (`lmHeadCrossEntropySum`) is in head.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { IGNORE_INDEX } from './batch.js';

/** Rows whose label carries loss, and those labels. */
export function lossRows(labels: Int32Array): { rows: Int32Array; targets: Int32Array } {
  let n = 0;
  for (const l of labels) if (l !== IGNORE_INDEX) n++;
  const rows = new Int32Array(n);
  const targets = new Int32Array(n);
  let k = 0;
  labels.forEach((l, i) => {
    if (l === IGNORE_INDEX) return;
    rows[k] = i;
    targets[k++] = l;
  });
  return { rows, targets };
}

export function checkLabels(labels: Int32Array, vocab: number, op: string): void {
  for (const l of labels) {
    if (l !== IGNORE_INDEX && (l < 0 || l >= vocab)) {
      throw new Error(`Argument 'labels' passed to '${op}' has ${l}, outside [0, ${vocab}) and not -100`);
    }
  }
}

/** The fused row logsumexp kernel's name (mft's own, not a tfjs kernel). Input `z` `[M, V]`; output `[M]`. */
export const LOG_SUM_EXP_KERNEL = 'MftLogSumExp';

/**
 * logsumexp over each row of `z` `[M, V]`: one kernel where the backend registers it (a pass for
 * the max, one for the sum of exponentials), tfjs's `logSumExp` (max, sub, exp, sum, log, add)
 * elsewhere. The vocabulary-wide rows of the loss make this the largest element-wise work of a step.
 */
export function rowLogSumExp(z: tf.Tensor2D): tf.Tensor1D {
  if (z.dtype === 'float32' && tf.getKernel(LOG_SUM_EXP_KERNEL, tf.getBackend()) !== undefined) {
    return tf.engine().runKernel(LOG_SUM_EXP_KERNEL, { z }, {}) as tf.Tensor1D;
  }
  return tf.logSumExp(z, 1);
}

/**
 * Its gradient's kernel, registered with it: inputs `z` `[M, V]`, `lse` (its output `[M]`) and `dy`
 * `[M]`; output `dy[r] * exp(z[r, c] - lse[r])`, one pass where softmax takes three and a multiply.
 */
export const LOG_SUM_EXP_GRAD_KERNEL = 'MftLogSumExpGrad';

// d logsumexp(z) / dz = softmax(z) = exp(z - logsumexp(z)), per row.
tf.registerGradient({
  kernelName: LOG_SUM_EXP_KERNEL,
  inputsToSave: ['z'],
  outputsToSave: [true],
  gradFunc: (dy, saved) => {
    const [z, lse] = saved as [tf.Tensor2D, tf.Tensor1D];
    if (tf.getKernel(LOG_SUM_EXP_GRAD_KERNEL, tf.getBackend()) !== undefined)
      return {
        z: () =>
          tf.engine().runKernel(LOG_SUM_EXP_GRAD_KERNEL, { z, lse, dy: dy as tf.Tensor1D }, {}) as tf.Tensor,
      };
    return { z: () => tf.mul(tf.softmax(z), tf.expandDims(dy as tf.Tensor1D, 1)) };
  },
});

/** sum_i lse_i - z_i[target_i]. */
function pickedSum(z: tf.Tensor2D, lse: tf.Tensor1D, targets: Int32Array): tf.Scalar {
  const [M, V] = z.shape;
  const flat = new Int32Array(M);
  for (let i = 0; i < M; i++) flat[i] = i * V + (targets[i] as number);
  const picked = tf.gather(tf.reshape(z, [M * V]), tf.tensor1d(flat, 'int32')); // [M]
  return tf.sum(tf.sub(lse, picked));
}

/** sum_i logsumexp(z_i) - z_i[target_i] for logits `z` `[M, V]` (forward only). */
export function pickedLossSum(z: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  return tf.tidy(() => pickedSum(z, rowLogSumExp(z), targets));
}

/**
 * `pickedLossSum` and the rows' softmax from one logsumexp: the softmax as `exp(z - lse)` (the
 * gradient kernel's single pass, with dy = 1) where the backend has it, else `tf.softmax`.
 * @returns `[loss sum, softmax [M, V]]`
 */
export function pickedLossSumAndSoftmax(z: tf.Tensor2D, targets: Int32Array): [tf.Scalar, tf.Tensor2D] {
  return tf.tidy(() => {
    const lse = rowLogSumExp(z);
    const probs =
      z.dtype === 'float32' && tf.getKernel(LOG_SUM_EXP_GRAD_KERNEL, tf.getBackend()) !== undefined
        ? (tf
            .engine()
            .runKernel(LOG_SUM_EXP_GRAD_KERNEL, { z, lse, dy: tf.onesLike(lse) }, {}) as tf.Tensor2D)
        : tf.softmax(z);
    return [pickedSum(z, lse, targets), probs];
  });
}

/**
 * Summed cross-entropy of logits against labels, with its gradient w.r.t. the logits.
 * @param logits `[N, V]`
 * @param labels length N; -100 carries no loss
 * @returns scalar sum over the tokens that carry loss
 * @example
 *   const lossSum = crossEntropySum(logits, batch.labels); // divide by the step's token count
 */
export function crossEntropySum(logits: tf.Tensor2D, labels: Int32Array): tf.Scalar {
  const [N, V] = logits.shape;
  if (labels.length !== N) {
    throw new Error(
      `Argument 'labels' passed to 'crossEntropySum' must have ${N} entries, got ${labels.length}`,
    );
  }
  checkLabels(labels, V, 'crossEntropySum');
  const { rows, targets } = lossRows(labels);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const z = args[0] as tf.Tensor2D;
    (args[1] as tf.GradSaveFunc)([z]);
    const value = tf.tidy(() => {
      if (rows.length === 0) return tf.scalar(0);
      return pickedLossSum(tf.gather(z, tf.tensor1d(rows, 'int32')), targets);
    });
    const gradFunc = (dy: tf.Scalar, saved: tf.Tensor[]) => {
      const zs = saved[0] as tf.Tensor2D;
      // softmax(z) - onehot(label), rows without loss zeroed; -1 gives an all-zero one-hot row.
      const valid = new Float32Array(N);
      const hot = new Int32Array(N).fill(-1);
      for (let k = 0; k < rows.length; k++) {
        valid[rows[k] as number] = 1;
        hot[rows[k] as number] = targets[k] as number;
      }
      const dz = tf.sub(
        tf.mul(tf.softmax(zs), tf.tensor2d(valid, [N, 1])),
        // int32 one-hot then cast: tfjs-backend-wasm 4.22 writes a float32 oneHot's 1 as the int bit pattern.
        tf.cast(tf.oneHot(tf.tensor1d(hot, 'int32'), V), 'float32'),
      ); // [N, V]
      return [tf.mul(dz, dy)];
    };
    return { value, gradFunc };
  });
  return op(logits) as tf.Scalar;
}
