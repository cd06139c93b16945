/**
 * Next-token cross-entropy as custom-gradient ops. The forward never builds a one-hot of
 * `[tokens, vocab]` (the picked logit is read with a forward-only gather), and the gradient is
 * written by hand because tfjs's `gather` gradient has no wasm kernel:
 *
 *   loss      = sum over tokens with label != -100 of  logsumexp(z) - z[label]
 *   dloss/dz  = softmax(z) - onehot(label)      (zero for ignored tokens)
 *
 * Both ops return the SUM; the trainer divides by the number of loss tokens of the whole step.
 */
import * as tf from '@tensorflow/tfjs';
import { IGNORE_INDEX } from './batch.js';

/** Rows whose label carries loss, and those labels. */
function lossRows(labels: Int32Array): { rows: Int32Array; targets: Int32Array } {
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

function checkLabels(labels: Int32Array, vocab: number, op: string): void {
  for (const l of labels) {
    if (l !== IGNORE_INDEX && (l < 0 || l >= vocab)) {
      throw new Error(`Argument 'labels' passed to '${op}' has ${l}, outside [0, ${vocab}) and not -100`);
    }
  }
}

/** sum_i logsumexp(z_i) - z_i[target_i] for logits `z` `[M, V]` (forward only). */
function pickedLossSum(z: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  return tf.tidy(() => {
    const [M, V] = z.shape;
    const flat = new Int32Array(M);
    for (let i = 0; i < M; i++) flat[i] = i * V + (targets[i] as number);
    const picked = tf.gather(tf.reshape(z, [M * V]), tf.tensor1d(flat, 'int32')); // [M]
    return tf.sum(tf.sub(tf.logSumExp(z, 1), picked));
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

/**
 * The output head and the loss fused and run over chunks of rows, so that at most
 * `chunkSize x vocab` logits exist at once. Only rows that carry loss are computed.
 *
 *   z = h W^T;  loss = sum CE(z, label);  dloss/dh = (softmax(z) - onehot(label)) W = softmax(z) W - W[label]
 *
 * When a gradient tape is recording, the forward also computes dloss/dh from each chunk's logits
 * while they exist (`[rows, hidden]`, far smaller than the logits) and saves it, so the backward
 * only scales it by dy: two matmuls per chunk instead of three (forward, recomputed logits, p W).
 * Without a tape (evaluation) only the logits are computed.
 *
 * @param hidden `[N, hidden]` (already through the final norm); the only differentiable input
 * @param weight `[V, hidden]` lm_head (or the tied embedding), constant
 * @param labels length N; -100 carries no loss
 * @param chunkSize rows per chunk; default keeps a chunk's logits near 2^24 floats (64 MiB)
 * @returns scalar sum over the tokens that carry loss
 */
export function lmHeadCrossEntropySum(
  hidden: tf.Tensor2D,
  weight: tf.Tensor2D,
  labels: Int32Array,
  chunkSize?: number,
): tf.Scalar {
  const [N, Hd] = hidden.shape;
  const [V] = weight.shape;
  if (labels.length !== N) {
    throw new Error(
      `Argument 'labels' passed to 'lmHeadCrossEntropySum' must have ${N} entries, got ${labels.length}`,
    );
  }
  checkLabels(labels, V, 'lmHeadCrossEntropySum');
  const chunk = Math.max(1, chunkSize ?? defaultChunkRows(V));
  const { rows, targets } = lossRows(labels);
  const M = rows.length;
  // Inside the custom op the engine reports no tape (it is running a kernel), so ask before.
  const taped = tf.engine().isTapeOn();

  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const h = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    // Plain (untransposed) 2-D matMuls are the fast ones on wasm, and only with a narrow output:
    // z is computed per block of vocabulary columns, p W per block of hidden columns.
    const weightTs = blocks(V, VOCAB_BLOCK).map(([at, n]) =>
      tf.transpose(tf.slice(weight, [at, 0], [n, Hd])),
    ); // [hidden, n]
    const weightCols = taped
      ? blocks(Hd, HIDDEN_BLOCK).map(([at, n]) => tf.slice(weight, [0, at], [V, n]))
      : []; // [V, n]
    let total: tf.Scalar = tf.scalar(0);
    const parts: tf.Tensor2D[] = [];
    for (let s = 0; s < M; s += chunk) {
      const e = Math.min(M, s + chunk);
      const [part, dPart] = tf.tidy((): tf.Tensor[] => {
        const hc = tf.gather(h, tf.tensor1d(rows.subarray(s, e), 'int32')) as tf.Tensor2D; // [c, hidden]
        const z = concatColumns(weightTs.map((wt) => tf.matMul(hc, wt))); // [c, V]
        const sum = tf.add(total, pickedLossSum(z, targets.subarray(s, e))) as tf.Scalar;
        if (!taped) return [sum];
        const picked = tf.gather(weight, tf.tensor1d(targets.subarray(s, e), 'int32')); // [c, hidden]
        const p = tf.softmax(z); // [c, V]
        return [sum, tf.sub(concatColumns(weightCols.map((wc) => tf.matMul(p, wc))), picked)]; // [c, hidden]
      });
      total = part as tf.Scalar;
      if (dPart) parts.push(dPart as tf.Tensor2D);
    }
    if (taped && M > 0) {
      // d(sum)/dh for the loss rows [M, hidden]; the engine keeps its own copy for the backward.
      save([parts.length === 1 ? (parts[0] as tf.Tensor2D) : tf.concat(parts, 0)]);
    }
    const gradFunc = (dy: tf.Scalar, saved: tf.Tensor[]) => {
      if (M === 0 || saved.length === 0) return [tf.zeros([N, Hd])];
      const dRows = saved[0] as tf.Tensor2D; // [M, hidden]
      return [tf.mul(tf.scatterND(tf.tensor2d(rows, [M, 1], 'int32'), dRows, [N, Hd]), dy)]; // [N, hidden]
    };
    return { value: total, gradFunc };
  });
  return op(hidden) as tf.Scalar;
}

/** Vocabulary columns per logits matMul, hidden columns per `softmax(z) W` matMul (measured on wasm). */
const VOCAB_BLOCK = 4096;
const HIDDEN_BLOCK = 128;

/** `[start, length]` of consecutive blocks of at most `size` covering `[0, total)`. */
function blocks(total: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let at = 0; at < total; at += size) out.push([at, Math.min(size, total - at)]);
  return out;
}

function concatColumns(parts: tf.Tensor2D[]): tf.Tensor2D {
  return parts.length === 1 ? (parts[0] as tf.Tensor2D) : tf.concat(parts, 1);
}

/** Rows per chunk so that a chunk's logits hold about 2^24 floats. */
export function defaultChunkRows(vocab: number): number {
  return Math.max(1, Math.floor(2 ** 24 / vocab));
}
