/**
 * `mft eval`'s generation metrics on workers: each worker is a lane of `scoreGenerations`, running
 * `greedyContinuation` on its own backend with the adapter published from `mirror` now (or none).
 */
import type { Continuer } from '../eval/generation-metrics.js';
import type { LoraMirror } from './lora-mirror.js';
import type { WorkerPool } from './pool.js';

/** @example const c = await workerContinuer(pool, mirror, { withLora: true }); */
export async function workerContinuer(
  pool: WorkerPool,
  mirror: LoraMirror,
  opts: { withLora: boolean },
): Promise<Continuer> {
  const version = await mirror.publish();
  return {
    lanes: pool.size,
    continue: async (lane, promptIds, o) => {
      const r = await pool.continue(lane, {
        kind: 'continue',
        version,
        promptIds,
        maxNewTokens: o.maxNewTokens,
        stopAtNewline: o.stopAtNewline,
        withLora: opts.withLora,
      });
      return { ids: r.ids, text: r.text };
    },
  };
}
