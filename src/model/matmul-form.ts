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
