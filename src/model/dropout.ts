/**
 * Inverted dropout (the LoRA input's): zero each element with probability `rate`, scale the rest
 * by 1 / (1 - rate). Element i of the mask is a hash of (seed, i) (`dropoutMask`), so the same seed
 * draws the same mask again (the backward pass redraws it instead of keeping it; the layer-wise
 * backward recomputes every layer), and any rows of it cost only those rows.
 *
 * `DROPOUT_KERNEL` is the op as one kernel (x times its mask, drawn in place), which a backend may
 * register (the wasm backend's native kernels do); elsewhere the mask is drawn here and multiplied
 * on the backend. Both give the same values: x * (1 / (1 - rate)) or x * 0 in float32.
 */
import * as tf from '@tensorflow/tfjs';

/** The fused kernel's name (mft's own, not a tfjs kernel). Input `x`; attrs `rate`, `seed`, `skip`. */
export const DROPOUT_KERNEL = 'MftDropout';

/**
 * Where the rows of `x` sit in the batch whose mask `seed` draws (a worker computing rows
 * `[start, start + n)` of a micro-batch draws that micro-batch's mask rows, so the masks do not
 * depend on how the rows are split). Units: rows of the flattened `[N, in]` input.
 */
export interface DropoutRows {
  readonly start: number;
  readonly total: number;
}

/**
 * `x` with inverted dropout applied; the mask of `seed`, or with `rows` exactly rows
 * `[start, start + n)` of a larger input's mask (`x` 2-D).
 */
export function dropout<T extends tf.Tensor>(x: T, rate: number, seed: number, rows?: DropoutRows): T {
  if (rate <= 0) return x;
  return dropoutAt(x, rate, seed, rows ? rowsOffset(x, rows) : 0);
}

/** `x` times values `[skip, skip + x.size)` of the mask. */
function dropoutAt<T extends tf.Tensor>(x: T, rate: number, seed: number, skip: number): T {
  if (x.dtype === 'float32' && tf.getKernel(DROPOUT_KERNEL, tf.getBackend()) !== undefined) {
    const attrs = { rate, seed, skip };
    return tf.engine().runKernel(DROPOUT_KERNEL, { x }, attrs as unknown as tf.NamedAttrMap) as T;
  }
  return tf.tidy(() => tf.mul(x, tf.tensor(dropoutMask(x.size, rate, seed, skip), x.shape)) as T);
}

// The gradient of x * mask is dy * mask: the same mask, drawn again.
tf.registerGradient({
  kernelName: DROPOUT_KERNEL,
  gradFunc: (dy, _saved, attrs) => {
    const { rate, seed, skip } = attrs as unknown as { rate: number; seed: number; skip: number };
    return { x: () => dropoutAt(dy as tf.Tensor, rate, seed, skip) };
  },
});

/**
 * MurmurHash3's finalizer: a bijection of 32-bit words whose every output bit depends on every
 * input bit. On int32 values (V8 keeps them small integers, not doubles), so the result is the
 * word as a signed int32.
 */
function fmix32(h: number): number {
  let x = h;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return x ^ (x >>> 16);
}

/**
 * Values `[skip, skip + n)` of the dropout mask of `seed`: 1 / (1 - rate) where kept, else 0.
 * Counter-based, like Philox in PyTorch and JAX: element i is kept when, in unsigned 32-bit words,
 *   fmix32(fmix32(lo(i) + k1) ^ (k2 + hi(i))) >= floor(rate * 2^32),
 *   k1 = fmix32(seed ^ 0x9e3779b9), k2 = fmix32(seed + 0x7f4a7c15), i = hi * 2^32 + lo,
 * so a worker computing some rows draws just those (a sequential stream would have to be replayed
 * up to its first row) and the mask does not depend on how rows are split.
 */
export function dropoutMask(n: number, rate: number, seed: number, skip = 0): Float32Array {
  const k1 = fmix32((seed ^ 0x9e3779b9) | 0);
  const k2 = fmix32((seed + 0x7f4a7c15) | 0);
  // unsigned h >= t is signed (h ^ 2^31) >= (t - 2^31)
  const threshold = Math.min(2 ** 32 - 1, Math.floor(rate * 2 ** 32)) - 2 ** 31;
  const keep = Math.fround(1 / (1 - rate));
  const mask = new Float32Array(n);
  let lo = skip | 0;
  let hiKey = (k2 + Math.floor(skip / 2 ** 32)) | 0;
  for (let i = 0; i < n; i++) {
    if ((fmix32(fmix32((lo + k1) | 0) ^ hiKey) ^ 0x80000000) >= threshold) mask[i] = keep;
    lo = (lo + 1) | 0;
    if (lo === 0) hiKey = (hiKey + 1) | 0;
  }
  return mask;
}

/** Values of the whole input's mask before rows `[start, start + n)` of a 2-D `x`. */
function rowsOffset(x: tf.Tensor, rows: DropoutRows): number {
  const n = x.shape[0] as number;
  if (x.rank !== 2 || rows.start < 0 || rows.start + n > rows.total) {
    throw new Error(
      `Argument 'rows' passed to 'dropout' must place the ${n} rows of a 2-D input within ${rows.total}, got start ${rows.start}`,
    );
  }
  return rows.start * (x.shape[1] as number);
}
