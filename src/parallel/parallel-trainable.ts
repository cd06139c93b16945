/**
 * A `Trainable` whose gradients and eval losses are computed by workers. The main thread keeps the
 * master LoRA variables, the optimizer and the adapter files (delegated to the in-thread
 * trainable); before each request it writes the LoRA values into shared memory. A step's rows are
 * split across the workers (split-rows.ts), each worker sums its pieces' gradients, and the main
 * thread adds the workers' sums in worker order, so the result is the same for every run of the
 * same worker count and equals the one-thread result to float round-off.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../model/batch.js';
import type { MicroBatchGrads, Trainable } from '../train/train.js';
import type { LoraMirror } from './lora-mirror.js';
import type { DoneReply, WorkerPool } from './pool.js';
import { splitRows } from './split-rows.js';

/**
 * @param base the in-thread trainable over the same LoRA variables (weights, adapter files)
 * @param pool started workers, given `mirror`'s values and keys
 * @param mirror the shared copy of `base.variables`
 * @example const t = parallelTrainable(loraTrainable(model, lora, { checkpointing: true, training: info }), pool, mirror);
 */
export function parallelTrainable(base: Trainable, pool: WorkerPool, mirror: LoraMirror): Trainable {
  const keys = mirror.keys;
  const publish = () => mirror.publish();

  const stepLossAndGrads = async (
    batches: readonly Batch[],
    opts: { lossScale: number; dropoutSeeds: readonly number[] },
  ): Promise<MicroBatchGrads> => {
    const v = await publish();
    const results = await Promise.all(
      splitRows(batches, pool.size).map((pieces, k) =>
        pieces.length === 0
          ? null
          : pool.compute(k, {
              kind: 'grads',
              version: v,
              lossScale: opts.lossScale,
              pieces: pieces.map((p) => ({
                batch: p.batch,
                dropoutSeed: opts.dropoutSeeds[p.micro]!,
                start: p.start,
                total: p.total,
              })),
            }),
      ),
    );
    const done = results.filter((r): r is DoneReply => r !== null);
    const grads = new Map<string, tf.Tensor>();
    for (const [j, key] of keys.entries()) {
      const sum = new Float32Array(done[0]!.grads[j]!.length);
      for (const r of done) {
        const g = r.grads[j]!;
        for (let i = 0; i < sum.length; i++) sum[i]! += g[i]!;
      }
      grads.set(key, tf.tensor(sum, base.variables.get(key)!.shape, 'float32'));
    }
    return sumLosses(done, grads);
  };

  return {
    variables: base.variables,
    lossAndGrads: (batch, opts) =>
      stepLossAndGrads([batch], { lossScale: opts.lossScale, dropoutSeeds: [opts.dropoutSeed] }),
    stepLossAndGrads,
    evalLoss: async (batch) => {
      const v = await publish();
      const results = await Promise.all(
        splitRows([batch], pool.size).map((pieces, k) =>
          pieces.length === 0 ? null : pool.compute(k, { kind: 'eval', version: v, batch: pieces[0]!.batch }),
        ),
      );
      const r = sumLosses(
        results.filter((x): x is DoneReply => x !== null),
        new Map(),
      );
      return { lossSum: r.lossSum, count: r.count };
    },
    adapterWriter: () => base.adapterWriter(),
    loadAdapter: (dir) => base.loadAdapter(dir),
  };
}

/** The workers' loss sums and token counts, added in worker order. */
function sumLosses(results: readonly DoneReply[], grads: Map<string, tf.Tensor>): MicroBatchGrads {
  let lossSum = 0;
  let count = 0;
  for (const r of results) {
    lossSum += r.lossSum;
    count += r.count;
  }
  return { lossSum, count, grads };
}
