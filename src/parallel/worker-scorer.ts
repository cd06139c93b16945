/**
 * `mft eval`'s loss batches on workers: each batch goes whole to one worker (round robin, as many
 * at once as there are workers), which runs it as `batchScorer` does in the main thread; the sums
 * are added in batch order by `evaluateLoss`.
 */
import type { BatchScorer } from '../eval/loss-eval.js';
import type { LoraMirror } from './lora-mirror.js';
import type { WorkerPool } from './pool.js';

/**
 * @param withLora apply the workers' adapter (the main thread's, published from `mirror` now)
 * @example const scorer = await workerScorer(pool, mirror, { withLora: true });
 */
export async function workerScorer(
  pool: WorkerPool,
  mirror: LoraMirror,
  opts: { withLora: boolean; chunkRows?: number },
): Promise<BatchScorer> {
  const version = await mirror.publish();
  let next = 0;
  return {
    parallel: pool.size,
    score: async (batch) => {
      const k = next++ % pool.size;
      const r = await pool.score(k, {
        kind: 'score',
        version,
        batch,
        withLora: opts.withLora,
        chunkRows: opts.chunkRows,
      });
      return { nll: r.nll, correct: r.correct, count: r.count };
    },
    dispose: () => {},
  };
}
