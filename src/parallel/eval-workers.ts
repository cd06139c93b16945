/**
 * Workers for `mft eval` (the loss batches and the generation metrics' continuations): started
 * over the loaded base (moved into shared memory once, the main thread switching to the shared
 * arrays too) with the adapter's LoRA settings, when `num_workers` gives more than one.
 */
import type { BackendName } from '../backend/index.js';
import type { Continuer } from '../eval/generation-metrics.js';
import type { BatchScorer } from '../eval/loss-eval.js';
import type { LoraState } from '../lora/index.js';
import type { LoadedModel } from '../model/index.js';
import { LoraMirror } from './lora-mirror.js';
import { type NumWorkersSetting, resolveNumWorkers, type WorkerCount, workerBytes } from './num-workers.js';
import { WorkerPool } from './pool.js';
import { openSharedModel, shareModel } from './shared-model.js';
import { workerContinuer } from './worker-continuer.js';
import { workerScorer } from './worker-scorer.js';

export interface EvalWorkers {
  /** The base over shared memory: load the adapter onto this one. */
  model: LoadedModel;
  workers: WorkerCount;
  /** Scorers for `evaluateLoss` (null with one worker: the main thread scores). */
  scorer(withLora: boolean): Promise<BatchScorer | null>;
  /** Where the generation metrics' continuations run (null with one worker: the main thread). */
  continuer(withLora: boolean): Promise<Continuer | null>;
  close(): Promise<void>;
}

/**
 * @param loadLora builds the adapter's LoRA state on the model it is given (null: base only)
 * @param tokenBudget token slots of one eval batch (for the memory estimate)
 * @param tokenizerDir the folder of the tokenizer the workers decode continuations with
 */
export async function startEvalWorkers(
  setting: NumWorkersSetting,
  backend: BackendName,
  base: LoadedModel,
  tokenBudget: number,
  tokenizerDir: string,
  loadLora: (model: LoadedModel) => LoraState | null,
): Promise<{ evalWorkers: EvalWorkers; lora: LoraState | null }> {
  const perWorkerBytes = workerBytes(base.spec, {
    micro_batch_size: 1,
    sequence_len: tokenBudget,
    lora_r: 0,
    targets: [],
    gradient_checkpointing: false,
  });
  const workers = resolveNumWorkers(setting, backend, {
    perWorkerBytes,
    rowsPerStep: Number.POSITIVE_INFINITY,
  });
  if (workers.count <= 1 || (backend !== 'wasm' && backend !== 'cpu')) {
    const lora = loadLora(base);
    const none: EvalWorkers = {
      model: base,
      workers,
      scorer: async () => null,
      continuer: async () => null,
      close: async () => {},
    };
    return { evalWorkers: none, lora };
  }
  const shared = shareModel(base);
  const model = openSharedModel(shared);
  const lora = loadLora(model);
  const c = lora?.config;
  const mirror = new LoraMirror(lora?.variables ?? new Map());
  const loraOptions = c
    ? { r: c.r, alpha: c.alpha, dropout: 0, targets: [...c.targets], useRslora: c.useRslora, seed: 0 }
    : null;
  const pool = await WorkerPool.start(
    workers.count,
    { backend, model: shared, lora: loraOptions, checkpointing: true, tokenizerDir },
    mirror,
  );
  return {
    lora,
    evalWorkers: {
      model,
      workers,
      scorer: (withLora) => workerScorer(pool, mirror, { withLora }),
      continuer: (withLora) => workerContinuer(pool, mirror, { withLora }),
      close: () => pool.close(),
    },
  };
}
