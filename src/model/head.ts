/**
 * The output head, the one place the last decoder layer's output becomes logits:
 *
 *   z = rmsNorm(h, norm) lm_head^T        h [N, hidden], lm_head [vocab, hidden] (tied: embed_tokens)
 *
 * Every pass ends here: the training loss (`headLossSum`, fused with the cross-entropy and its
 * custom gradient), `forward`'s loss and logits, evaluation's statistics (`lossStats`) and
 * generation's next-token logits (`lastLogits`). The logits are computed over chunks of rows, so at
 * most `chunkRows x vocab` exist at once, and per block of vocabulary columns: plain (untransposed)
 * 2-D matMuls with a narrow output are the fast ones on wasm's stock kernels. Where the kernels
 * take every form at full speed (matmul-form.ts), each product is one matMul on lm_head as it is.
 */
import * as tf from '@tensorflow/tfjs';
import { IGNORE_INDEX } from './batch.js';
import {
  checkLabels,
  lossRows,
  pickedLossSum,
  pickedLossSumAndSoftmax,
  rowLogSumExp,
} from './cross-entropy.js';
import { type LoadedModel, uploadValues } from './loaded-model.js';
import { flexibleMatMul } from './matmul-form.js';
import { rmsNorm } from './rms-norm.js';
import type { WeightProvider } from './weight-provider.js';

/** Vocabulary columns per logits matMul, hidden columns per `softmax(z) W` matMul (measured on wasm). */
const VOCAB_BLOCK = 4096;
const HIDDEN_BLOCK = 128;

/** Rows per chunk so that a chunk's logits hold about 2^24 floats. */
export function defaultChunkRows(vocab: number): number {
  return Math.max(1, Math.floor(2 ** 24 / vocab));
}

/** `[start, length]` of consecutive blocks of at most `size` covering `[0, total)`. */
function blocks(total: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let at = 0; at < total; at += size) out.push([at, Math.min(size, total - at)]);
  return out;
}

function concatColumns(parts: tf.Tensor2D[]): tf.Tensor2D {
  return parts.length === 1 ? (parts[0] as tf.Tensor2D) : tf.concat(parts, 1);
}

/** lm_head `[V, hidden]` as the logits matMuls read it: `[hidden, n]` per block of vocabulary columns. */
function vocabBlocksT(weight: tf.Tensor2D): tf.Tensor2D[] {
  const [V, Hd] = weight.shape;
  return blocks(V, VOCAB_BLOCK).map(([at, n]) => tf.transpose(tf.slice(weight, [at, 0], [n, Hd])));
}

/** z = x lm_head^T for rows already through the final norm: `[c, hidden]` -> `[c, V]`. */
function blockLogits(x: tf.Tensor2D, weightTs: readonly tf.Tensor2D[]): tf.Tensor2D {
  return concatColumns(weightTs.map((wt) => tf.matMul(x, wt)));
}

/** lm_head, and its vocabulary blocks transposed when a long-lived `OutputHead` has built them. */
interface LmHead {
  weight: tf.Tensor2D; // [V, hidden]
  weightTs?: readonly tf.Tensor2D[] | undefined; // [hidden, n] per block
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
  return fusedLossSum(hidden, { weight }, labels, chunkSize);
}

function fusedLossSum(
  hidden: tf.Tensor2D,
  lmHead: LmHead,
  labels: Int32Array,
  chunkSize?: number,
): tf.Scalar {
  const { weight } = lmHead;
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
    // On the stock kernels z is computed per block of vocabulary columns and p W per block of
    // hidden columns; on flexible ones each is one product.
    const flexible = flexibleMatMul();
    const weightTs = flexible ? [] : (lmHead.weightTs ?? vocabBlocksT(weight)); // [hidden, n]
    const weightCols =
      taped && !flexible ? blocks(Hd, HIDDEN_BLOCK).map(([at, n]) => tf.slice(weight, [0, at], [V, n])) : []; // [V, n]
    let total: tf.Scalar = tf.scalar(0);
    const parts: tf.Tensor2D[] = [];
    for (let s = 0; s < M; s += chunk) {
      const e = Math.min(M, s + chunk);
      const [part, dPart] = tf.tidy((): tf.Tensor[] => {
        const hc = tf.gather(h, tf.tensor1d(rows.subarray(s, e), 'int32')) as tf.Tensor2D; // [c, hidden]
        const z: tf.Tensor2D = flexible ? tf.matMul(hc, weight, false, true) : blockLogits(hc, weightTs); // [c, V]
        const chunkTargets = targets.subarray(s, e);
        if (!taped) return [tf.add(total, pickedLossSum(z, chunkTargets))];
        const [chunkLoss, p] = pickedLossSumAndSoftmax(z, chunkTargets); // p [c, V]
        const sum = tf.add(total, chunkLoss) as tf.Scalar;
        const picked = tf.gather(weight, tf.tensor1d(chunkTargets, 'int32')); // [c, hidden]
        const pW = flexible ? tf.matMul(p, weight) : concatColumns(weightCols.map((wc) => tf.matMul(p, wc)));
        return [sum, tf.sub(pW, picked)]; // [c, hidden]
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

/** Summed statistics of the tokens that carry loss (float64, added up over a whole evaluation). */
export interface LossStats {
  /** Sum over loss tokens of logsumexp(z) - z[label]. */
  nll: number;
  /** Loss tokens whose argmax logit is the label. */
  correct: number;
  /** Tokens that carry loss. */
  count: number;
}

/**
 * The final norm and lm_head of a model as tensors, for as long as the caller keeps them (a whole
 * evaluation or generation; a training step builds one per micro-batch inside its tape).
 * @example
 *   const head = new OutputHead(model);
 *   try { const logits = await head.lastLogits(h); } finally { head.dispose(); }
 */
export class OutputHead {
  private readonly norm: tf.Tensor1D; // [hidden]
  /** lm_head `[V, hidden]`, for the loss; freed once the transposed blocks exist, rebuilt if needed. */
  private weight: tf.Tensor2D | undefined;
  /** The vocabulary blocks transposed, built at the first `logits` (a training step never needs them). */
  private weightTs: tf.Tensor2D[] | undefined;
  private readonly eps: number;

  /**
   * @param weights a provider that keeps the head's weights (`WeightProvider.head`, the device
   *   provider); without one they are widened from storage
   */
  constructor(
    private readonly model: LoadedModel,
    weights?: WeightProvider,
  ) {
    this.eps = model.spec.rms_norm_eps;
    // kept: the head outlives any tidy it is made in, until dispose()
    const kept = weights?.head?.();
    this.norm = tf.keep(kept?.norm ?? tf.tensor1d(uploadValues(model.norm)));
    if (kept) this.weight = tf.keep(kept.lm_head);
  }

  get vocabSize(): number {
    return this.model.spec.vocab_size;
  }

  /** lm_head as one tensor (kept: it outlives any tidy the call runs in, until dispose()). */
  private lmHeadWeight(): tf.Tensor2D {
    const { hidden_size: H, vocab_size: V } = this.model.spec;
    this.weight ??= tf.keep(tf.tensor2d(uploadValues(this.model.lm_head), [V, H]));
    return this.weight;
  }

  /** Logits of rows of the last layer's output: `[c, hidden]` -> `[c, V]`. */
  logits(h: tf.Tensor2D): tf.Tensor2D {
    if (flexibleMatMul() && !this.weightTs) {
      const weight = this.lmHeadWeight();
      return tf.tidy(() => tf.matMul(rmsNorm(h, this.norm, this.eps), weight, false, true));
    }
    if (!this.weightTs) {
      // One copy of lm_head at a time: the blocks replace the plain weight (a large vocabulary's
      // lm_head is gigabytes in fp32).
      const weight = this.lmHeadWeight();
      this.weightTs = tf.tidy(() => vocabBlocksT(weight).map((t) => tf.keep(t)));
      weight.dispose();
      this.weight = undefined;
    }
    const weightTs = this.weightTs;
    return tf.tidy(() => blockLogits(rmsNorm(h, this.norm, this.eps), weightTs));
  }

  /** Every logit, `[B, T, hidden]` -> `[B, T, V]` (small inputs: tests, `forward`'s returnLogits). */
  allLogits(h: tf.Tensor3D): tf.Tensor3D {
    const [B, T, hidden] = h.shape;
    return tf.tidy(() => tf.reshape(this.logits(tf.reshape(h, [B * T, hidden])), [B, T, this.vocabSize]));
  }

  /** Each row's last-position logits, row-major `[B, V]`. @param h `[B, T, hidden]` */
  async lastLogits(h: tf.Tensor3D): Promise<Float32Array> {
    const [B, T, hidden] = h.shape;
    const logits = tf.tidy(() =>
      this.logits(tf.reshape(tf.slice(h, [0, T - 1, 0], [B, 1, hidden]), [B, hidden])),
    );
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    return data;
  }

  /**
   * The summed cross-entropy, over chunks of the rows that carry loss. Differentiable w.r.t. `h`.
   * @param h `[B, T, hidden]` output of the last decoder layer
   * @param labels row-major `[B, T]`, -100 carries no loss
   * @returns `lossSum` (scalar tensor, the caller disposes it) and `count`, the tokens that carry loss
   */
  lossSum(h: tf.Tensor3D, labels: Int32Array, chunkSize?: number): { lossSum: tf.Scalar; count: number } {
    const [B, T, hidden] = h.shape;
    if (labels.length !== B * T) {
      throw new Error(
        `Argument 'labels' passed to 'headLossSum' must have ${B * T} entries, got ${labels.length}`,
      );
    }
    let count = 0;
    for (const l of labels) if (l !== IGNORE_INDEX) count++;
    const lossSum = tf.tidy(() => {
      const normed = rmsNorm(h, this.norm, this.eps); // [B, T, hidden]
      const lmHead = { weight: this.lmHeadWeight(), weightTs: this.weightTs };
      return fusedLossSum(tf.reshape(normed, [B * T, hidden]), lmHead, labels, chunkSize);
    });
    return { lossSum, count };
  }

  /**
   * Add the loss tokens of `h` to `sums`, without gradients: for each chunk of loss positions, the
   * logits `[c, V]`, their logsumexp, the label's logit and the argmax.
   * @param h `[B, T, hidden]` output of the last decoder layer
   * @param labels row-major `[B, T]`, -100 carries no loss
   * @param sums running sums of a whole evaluation (added to token by token)
   * @param chunkRows loss positions per chunk (default: about 2^24 logits per chunk)
   */
  async addLossStats(h: tf.Tensor3D, labels: Int32Array, sums: LossStats, chunkRows?: number): Promise<void> {
    const [B, T, hidden] = h.shape;
    const V = this.vocabSize;
    checkLabels(labels, V, 'addLossStats');
    const chunk = Math.max(1, chunkRows ?? defaultChunkRows(V));
    const { rows, targets } = lossRows(labels);
    const flat = tf.reshape(h, [B * T, hidden]); // [B*T, hidden]
    try {
      for (let s = 0; s < rows.length; s += chunk) {
        const c = Math.min(rows.length, s + chunk) - s;
        const picked = targets.subarray(s, s + c);
        const [nll, argmax] = tf.tidy(() => {
          const z = this.logits(
            tf.gather(flat, tf.tensor1d(rows.subarray(s, s + c), 'int32')) as tf.Tensor2D,
          ); // [c, V]
          const flatIds = picked.map((label, k) => k * V + label);
          const zLabel = tf.gather(tf.reshape(z, [c * V]), tf.tensor1d(flatIds, 'int32')); // [c]
          return [tf.sub(rowLogSumExp(z), zLabel), tf.argMax(z, 1)]; // [c], [c]
        });
        const [nllData, argmaxData] = await Promise.all([nll.data(), argmax.data()]);
        tf.dispose([nll, argmax]);
        for (let k = 0; k < c; k++) {
          sums.nll += nllData[k]!;
          if (argmaxData[k] === picked[k]) sums.correct += 1;
        }
        sums.count += c;
      }
    } finally {
      flat.dispose();
    }
  }

  dispose(): void {
    tf.dispose([this.norm, ...(this.weight ? [this.weight] : []), ...(this.weightTs ?? [])]);
  }
}

/**
 * Final RMSNorm, lm_head and the summed cross-entropy of one pass (training: call it on the tape).
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
  const head = new OutputHead(model, opts.weights);
  try {
    return head.lossSum(h, labels, opts.chunkSize);
  } finally {
    head.dispose();
  }
}

export interface HeadOptions {
  /** Rows of lm_head + loss computed at once (default: about 2^24 logits per chunk). */
  chunkSize?: number;
  /** A provider that keeps the head's weights (`WeightProvider.head`); else widened from storage. */
  weights?: WeightProvider;
}
