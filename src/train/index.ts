/**
 * The training stage: the loop (micro-batches, gradient accumulation, clipping, AdamW, schedules),
 * checkpoints with exact resume, signals, progress and metrics.
 */
export { AdamW, type AdamWConfig, type AdamWState, adamwUpdate } from './adamw.js';
export {
  type CheckpointInfo,
  latestCheckpoint,
  listCheckpoints,
  readOptimizerState,
  readTrainerState,
  type TrainerState,
} from './checkpoint.js';
export { clipByGlobalNorm, globalNorm } from './clip.js';
export { DataCursor, type TrainSplit, totalSteps, trainedTokens } from './data-cursor.js';
export {
  checkTrainingMemory,
  type MemoryVerdict,
  machineMemory,
  trainingMemory,
  WASM_HEAP_BYTES,
} from './memory-check.js';
export {
  baseStorageBytes,
  estimateTrainingMemory,
  type MemoryEstimate,
  type MemorySettings,
} from './memory-estimate.js';
export { type EvalRow, type MetricsRow, readMetrics, type TrainRow } from './metrics.js';
export { createProgress, formatDuration, type Progress, plainProgress } from './progress.js';
export { type TrainOptions, type TrainResult, train } from './run.js';
export { FINAL_ADAPTER, METRICS_FILE, RESOLVED_CONFIG } from './run-dir.js';
export { type LrSchedulerName, learningRate, type ScheduleConfig, warmupStepsFor } from './schedule.js';
export { exitCodeFor, type StopSignalName } from './signals.js';
export {
  type EvalSplit,
  type LoopResult,
  type MicroBatchGrads,
  type Trainable,
  type TrainData,
  type TrainSettings,
  trainLoop,
} from './train.js';
