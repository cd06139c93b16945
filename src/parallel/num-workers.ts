/**
 * How many training workers a run gets from `num_workers`. `auto` is one per core, fewer when the
 * free memory would not hold each worker's own copy of what it computes with (its engine and the
 * training memory estimate of its rows: layer weights in fp32, activations, lm_head and logits).
 * Workers only help backends that compute on one thread per engine (wasm, cpu): tensorflow
 * threads its own kernels and webgpu has one device, so there `auto` is 1 and more is refused.
 */
import { availableParallelism, freemem } from 'node:os';
import type { BackendName } from '../backend/index.js';
import type { ModelSpec } from '../model/index.js';
import { estimateTrainingMemory, type MemorySettings } from '../train/memory-estimate.js';
import { MftError } from '../util/index.js';

export type NumWorkersSetting = 'auto' | number;

/** The decision and why, for the run summary. */
export interface WorkerCount {
  count: number;
  /** e.g. `num_workers: auto, 2 cores`. */
  reason: string;
}

/** A worker's own engine (Node isolate, tfjs, the wasm module), measured roughly. */
const WORKER_ENGINE_BYTES = 96 * 2 ** 20;

/**
 * Bytes one worker needs beyond the shared frozen base: its engine and the tensors of training on
 * its rows (the estimate `mft train` checks memory with; an upper bound for evaluation).
 */
export function workerBytes(spec: ModelSpec, settings: MemorySettings): number {
  return WORKER_ENGINE_BYTES + estimateTrainingMemory(spec, 0, settings).tensors;
}

/**
 * @param setting `num_workers` of the task
 * @param backend the backend the run uses
 * @param run perWorkerBytes (`workerBytes(...)`), rowsPerStep (auto never starts a worker with no rows)
 * @example resolveNumWorkers('auto', 'wasm', { perWorkerBytes: 3e8, rowsPerStep: 16 })
 */
export function resolveNumWorkers(
  setting: NumWorkersSetting,
  backend: BackendName,
  run: { perWorkerBytes: number; rowsPerStep: number },
  machine: { cores: number; freeBytes: number } = { cores: availableParallelism(), freeBytes: freemem() },
): WorkerCount {
  const threaded = backend === 'tensorflow' || backend === 'webgpu';
  if (setting !== 'auto') {
    if (setting > 1 && threaded) {
      throw new MftError({
        where: 'num_workers',
        message: `${setting} workers need the wasm or cpu backend; ${backend} ${backend === 'webgpu' ? 'computes on one GPU' : 'threads its own kernels'}`,
        fix: 'set num_workers: 1 (or auto), or backend: wasm',
      });
    }
    return { count: setting, reason: `num_workers: ${setting}` };
  }
  if (threaded) return { count: 1, reason: `num_workers: auto, ${backend} threads its own kernels` };
  const byMemory = Math.max(1, Math.floor((0.75 * machine.freeBytes) / run.perWorkerBytes));
  const count = Math.max(1, Math.min(machine.cores, byMemory, run.rowsPerStep));
  const why =
    count === machine.cores
      ? `${machine.cores} cores`
      : count === byMemory
        ? `${machine.cores} cores, free memory for ${byMemory}`
        : `${machine.cores} cores, ${run.rowsPerStep} rows per step`;
  return { count, reason: `num_workers: auto, ${why}` };
}
