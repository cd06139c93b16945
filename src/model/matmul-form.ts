/**
 * Which form of matrix product the model writes. tfjs-backend-wasm's stock kernels run only the
 * plain 2-D matMul fast (XNNPACK): a transpose flag or a batch dimension makes the same work about
 * 10x slower, so the model transposes operands itself and splits large batched products into 2-D
 * ones. A backend whose kernels run every form at full speed (the native kernels of
 * src/backend/native-matmul.ts) names itself in this tfjs flag, and the model then writes the direct form,
 * which saves the transposes and the splits. Both forms compute the same sums.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * The tfjs flag naming the backend (its tfjs name) whose kernels run transposed and batched
 * matMuls as fast as plain ones; '' for none.
 */
export const FLEXIBLE_MATMUL_FLAG = 'MFT_FLEXIBLE_MATMUL';

/** Whether the active backend's kernels take transposed and batched matMuls at full speed. */
export function flexibleMatMul(): boolean {
  return tf.env().getFlags()[FLEXIBLE_MATMUL_FLAG] === tf.getBackend();
}

/**
 * How a layer hands its frozen projection weights to the products: `in_out`, `W^T [in, out]` (a
 * plain product; a transpose of each weight at each use), or `out_in`, `W [out, in]` as stored, the
 * products taking the transpose flag (where the kernels run it at full speed).
 */
export type ProjectionLayout = 'in_out' | 'out_in';

/** The layout the active backend's kernels want. */
export function projectionLayout(): ProjectionLayout {
  return flexibleMatMul() ? 'out_in' : 'in_out';
}
