/**
 * Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_:
 *
 *   norm = sqrt(sum over every tensor g of sum(g^2))
 *   g    = g * min(1, max_norm / (norm + 1e-6))
 *
 * The norm before clipping is what the trainer logs as `grad_norm`.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Global L2 norm of a set of gradients, accumulated in float64 over per-tensor fp32 sums of squares.
 * @param grads gradients keyed by parameter name (not disposed)
 * @example await globalNorm(new Map([['a', tf.tensor([3, 4])]])) // 5
 */
export async function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): Promise<number> {
  if (grads.size === 0) return 0;
  // One read of every per-tensor sum (a read from a GPU is a round trip), summed here in float64.
  const sums = tf.tidy(() => tf.stack([...grads.values()].map((g) => g.square().sum())));
  const values = await sums.data();
  sums.dispose();
  let sumSq = 0;
  for (const s of values) sumSq += s;
  return Math.sqrt(sumSq);
}

/**
 * Clip in place (the map's tensors are replaced and the old ones disposed) so the global norm is at
 * most `maxNorm`; returns the norm before clipping. `maxNorm` null = no clipping.
 * @param grads gradients keyed by parameter name; owned by the caller
 * @param maxNorm `max_grad_norm` of the task, or null
 * @example const gradNorm = await clipByGlobalNorm(grads, 1.0);
 */
export async function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number | null,
): Promise<number> {
  const norm = await globalNorm(grads);
  if (maxNorm == null || !Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return norm;
  for (const [key, g] of grads) {
    grads.set(key, g.mul(coef));
    g.dispose();
  }
  return norm;
}
