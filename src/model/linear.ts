/**
 * A frozen linear projection with an optional LoRA term (Hu et al. 2021, arXiv:2106.09685; PEFT's
 * `lora.Linear`), HF weight layout `W [out, in]`:
 *
 *   y = x W^T (+ b) + scale * dropout(x) A^T B^T        A: [r, in], B: [out, r]
 *
 * `scale` is alpha / r (or alpha / sqrt(r) with rsLoRA), decided by whoever builds the LoraParams.
 */
import * as tf from '@tensorflow/tfjs';
import { type DropoutRows, dropout } from './dropout.js';
import type { LinearName } from './linear-names.js';
import { flexibleMatMul, type ProjectionLayout } from './matmul-form.js';

/** One LoRA adapter on one projection, in PEFT's shapes. */
export interface LoraParams {
  /** lora_A `[r, in]`. */
  A: tf.Tensor2D;
  /** lora_B `[out, r]`. */
  B: tf.Tensor2D;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scale: number;
  /** Training only: inverted dropout on the LoRA input; the same seed gives the same mask. */
  dropout?: { rate: number; seed: number; rows?: DropoutRows };
}

/** The adapters of one layer, by projection. */
export type LayerLora = Partial<Record<LinearName, LoraParams>>;
/** The adapters of the model, one entry per layer. */
export type ModelLora = LayerLora[];

/**
 * Different adapters for the rows of one batch (serving many adapters at once): row b of the
 * input gets `perRow[b]` (none when undefined). The frozen product runs on the whole batch.
 */
export interface RowLora {
  readonly perRow: readonly (LoraParams | undefined)[];
}
/** The adapters of one layer for a batch: one for every row, or one per row. */
export type BatchLayerLora = Partial<Record<LinearName, LoraParams | RowLora>>;

/**
 * `x W^T (+ b) (+ scale * dropout(x) A^T B^T)`, differentiable w.r.t. `x`, `A` and `B`.
 * @param x `[..., in]` (rank 2 or 3)
 * @param w the frozen weight in `layout`: `W^T [in, out]` (default) or `W [out, in]`, as
 *   `layerTensors` hands it out
 * @param bias `[out]`
 * @param lora adapter of this projection
 * @returns `[..., out]`
 * @example
 *   const q = linear(x, w.q_proj, w.q_bias, lora?.q_proj); // [B, T, n_heads * head_dim]
 */
export function linear<T extends tf.Tensor>(
  x: T,
  w: tf.Tensor2D,
  bias?: tf.Tensor1D,
  lora?: LoraParams | RowLora,
  layout: ProjectionLayout = 'in_out',
): T {
  return tf.tidy(() => {
    const inDim = x.shape[x.rank - 1] as number;
    const [wIn, outDim] = layout === 'in_out' ? w.shape : [w.shape[1], w.shape[0]];
    if (wIn !== inDim) {
      const want = layout === 'in_out' ? `[${inDim}, out]` : `[out, ${inDim}]`;
      throw new Error(`Argument 'w' passed to 'linear' must be ${want} (${layout}), got [${w.shape}]`);
    }
    const frozen = { w, layout };
    const x2 = tf.reshape(x, [-1, inDim]) as tf.Tensor2D; // [N, in]
    let y: tf.Tensor2D;
    if (lora && !('perRow' in lora)) {
      y = loraMatMul(x2, frozen, lora);
      if (bias) y = tf.add(y, bias);
    } else {
      y = frozenMatMul(x2, frozen); // [N, out]
      if (bias) y = tf.add(y, bias);
      const delta = lora ? rowLoraDelta(x2, x.shape[0] as number, lora) : null;
      if (delta) y = tf.add(y, delta);
    }
    return tf.reshape(y, [...x.shape.slice(0, -1), outDim]) as T;
  });
}

/**
 * The LoRA terms of a batch whose rows use different adapters: each adapter's term on the whole
 * batch, zeroed (times a 0/1 row mask) on the rows that do not use it. A row's sum is then exactly
 * its own adapter's term (adding zeros is exact), so it matches running that adapter alone.
 * @param x2 `[B * T, in]`, rows in batch order
 */
function rowLoraDelta(x2: tf.Tensor2D, batchSize: number, lora: RowLora): tf.Tensor2D | null {
  if (lora.perRow.length !== batchSize) {
    throw new Error(
      `Argument 'lora' passed to 'linear' has ${lora.perRow.length} rows, the batch ${batchSize}`,
    );
  }
  const perBatchRow = x2.shape[0] / batchSize;
  let delta: tf.Tensor2D | null = null;
  for (const p of new Set(lora.perRow)) {
    if (p === undefined) continue;
    const mask = new Float32Array(x2.shape[0]);
    lora.perRow.forEach((q, b) => {
      if (q === p) mask.fill(1, b * perBatchRow, (b + 1) * perBatchRow);
    });
    const term = tf.mul(
      tf.mul(matMul(matMul(x2, tf.transpose(p.A)), tf.transpose(p.B)), p.scale),
      tf.tensor2d(mask, [x2.shape[0], 1]),
    );
    delta = delta === null ? (term as tf.Tensor2D) : (tf.add(delta, term) as tf.Tensor2D);
  }
  return delta;
}

// tfjs-backend-wasm 4.22 runs a 2-D matMul with transposeA or transposeB about 10x slower than
// without (only the plain form reaches XNNPACK), and the autodiff gradient of a plain matMul uses
// those flags. So every 2-D product here is a plain matMul on explicitly transposed operands, with
// gradients written the same way, and frozen weights arrive already transposed (`in_out`); unless
// the kernels take the transpose flags at full speed (matmul-form.ts), when the gradients use the
// flags and frozen weights arrive as stored (`out_in`).

/** `a b^T`, with the transpose flag or an explicit transpose (matmul-form.ts). */
const matMulBT = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D =>
  flexibleMatMul() ? tf.matMul(a, b, false, true) : tf.matMul(a, tf.transpose(b));

/** `a^T b`, with the transpose flag or an explicit transpose. */
const matMulAT = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D =>
  flexibleMatMul() ? tf.matMul(a, b, true, false) : tf.matMul(tf.transpose(a), b);

/** A frozen projection weight and its layout (`W^T [in, out]` or `W [out, in]`). */
interface FrozenWeight {
  w: tf.Tensor2D;
  layout: ProjectionLayout;
}

/** `x W^T` `[N, out]` (`out_in`: the product with the transpose flag). */
const timesWT = (x: tf.Tensor2D, f: FrozenWeight): tf.Tensor2D =>
  f.layout === 'in_out' ? tf.matMul(x, f.w) : tf.matMul(x, f.w, false, true);

/** `dy W` `[N, in]`. */
const timesW = (dy: tf.Tensor2D, f: FrozenWeight): tf.Tensor2D =>
  f.layout === 'in_out' ? matMulBT(dy, f.w) : tf.matMul(dy, f.w);

/**
 * `x W^T` for a frozen weight; gradient for `x` only: `dx = dy W`.
 * @param x `[N, in]`
 * @returns `[N, out]`
 */
function frozenMatMul(x: tf.Tensor2D, frozen: FrozenWeight): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor2D;
    (args[1] as tf.GradSaveFunc)([frozen.w]);
    return {
      value: timesWT(xi, frozen), // [N, out]
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => [
        timesW(dy, { w: saved[0] as tf.Tensor2D, layout: frozen.layout }), // [N, in]
      ],
    };
  });
  return op(x) as tf.Tensor2D;
}

/**
 * `x W^T + scale * dropout(x) A^T B^T` as one differentiable op (w.r.t. `x`, `A` and `B`), its
 * gradient written out, so that the tape holds one node per projection instead of a dozen:
 *   d = dropout(x) A^T scale                  [N, r]
 *   g = dy B scale                            [N, r]
 *   dx = dy W + mask * (g A),  dA = g^T dropout(x),  dB = dy^T d
 * The scale multiplies the rank-r products, r / out times fewer multiplies than scaling the term.
 * @param x `[N, in]`
 * @returns `[N, out]`
 */
function loraMatMul(x: tf.Tensor2D, frozen: FrozenWeight, lora: LoraParams): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, A, B] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const d = lora.dropout && lora.dropout.rate > 0 ? lora.dropout : undefined;
    // The mask is drawn again for the backward (counter-based: the same values), never kept.
    const xd: tf.Tensor2D = d ? dropout(xi, d.rate, d.seed, d.rows) : xi; // [N, in]
    const down: tf.Tensor2D = tf.mul(matMulBT(xd, A), lora.scale); // [N, r]
    const value = tf.add(timesWT(xi, frozen), matMulBT(down, B)) as tf.Tensor2D; // [N, out]
    (args[3] as tf.GradSaveFunc)([xd, down, A, B, frozen.w]);
    const gradFunc = (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [xs, ds, As, Bs, ws] = saved as tf.Tensor2D[];
      return tf.tidy(() => {
        const g: tf.Tensor2D = tf.mul(tf.matMul(dy, Bs as tf.Tensor2D), lora.scale); // [N, r]
        const back = tf.matMul(g, As as tf.Tensor2D); // [N, in]
        const dyW = timesW(dy, { w: ws as tf.Tensor2D, layout: frozen.layout });
        const dx = tf.add(dyW, d ? dropout(back, d.rate, d.seed, d.rows) : back);
        return [dx, matMulAT(g, xs as tf.Tensor2D), matMulAT(dy, ds as tf.Tensor2D)];
      });
    };
    return { value, gradFunc };
  });
  return op(x, lora.A, lora.B) as tf.Tensor2D;
}

/**
 * `a b` for two differentiable matrices: `da = dy b^T`, `db = a^T dy`, with explicit transposes.
 * @param a `[M, K]`
 * @param b `[K, N]`
 * @returns `[M, N]`
 */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [ai, bi] = args as [tf.Tensor2D, tf.Tensor2D];
    (args[2] as tf.GradSaveFunc)([ai, bi]);
    return {
      value: tf.matMul(ai, bi) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [as, bs] = saved as [tf.Tensor2D, tf.Tensor2D];
        return [matMulBT(dy, bs), matMulAT(as, dy)];
      },
    };
  });
  return op(a, b) as tf.Tensor2D;
}
