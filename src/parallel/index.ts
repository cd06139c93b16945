/**
 * Data parallelism over worker threads: each worker its own tfjs backend, the frozen base shared
 * through SharedArrayBuffer, the rows of a step split across workers, gradients summed in the main
 * thread in worker order.
 */

export { type EvalWorkers, startEvalWorkers } from './eval-workers.js';
export { LoraMirror } from './lora-mirror.js';
export { type NumWorkersSetting, resolveNumWorkers, type WorkerCount, workerBytes } from './num-workers.js';
export { parallelTrainable } from './parallel-trainable.js';
export { WorkerPool } from './pool.js';
export { openSharedModel, type SharedModel, shareModel } from './shared-model.js';
export { type RowPiece, sliceRows, splitRows } from './split-rows.js';
export { workerScorer } from './worker-scorer.js';
