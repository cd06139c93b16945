/**
 * The messages between the main thread and a training worker. Everything here is plain data; the
 * frozen base and the LoRA values travel as SharedArrayBuffer-backed arrays (shared, not copied),
 * gradients come back as transferred Float32Arrays.
 */
import type { CreateLoraOptions } from '../lora/index.js';
import type { Batch } from '../model/batch.js';
import type { SharedModel } from './shared-model.js';

/** What a worker is started with (its `workerData`). */
export interface WorkerSetup {
  /** 0-based worker number (named in errors). */
  index: number;
  /** The backend the main thread resolved (`auto` already decided there); workers run these two only. */
  backend: 'wasm' | 'cpu';
  model: SharedModel;
  /** The run's LoRA settings; the worker builds variables of the same keys, shapes and order. */
  lora: CreateLoraOptions;
  /** `gradient_checkpointing`. */
  checkpointing: boolean;
  /** The LoRA values, all variables end to end in `variables` order; the main thread writes them. */
  loraValues: Float32Array;
}

/** Rows of one micro-batch a worker computes, with where they sit in it (for dropout). */
export interface WorkerPiece {
  batch: Batch;
  dropoutSeed: number;
  start: number;
  total: number;
}

/** `version` counts writes of `loraValues`: a worker re-reads them when it changed. */
export type WorkerRequest =
  | { kind: 'grads'; version: number; lossScale: number; pieces: WorkerPiece[] }
  | { kind: 'eval'; version: number; batch: Batch };

export type WorkerReply =
  | { kind: 'ready' }
  | {
      kind: 'done';
      lossSum: number;
      count: number;
      /** Gradients in `variables` order (empty for eval), summed over the pieces in order. */
      grads: Float32Array[];
    }
  | { kind: 'failed'; message: string; stack?: string };
