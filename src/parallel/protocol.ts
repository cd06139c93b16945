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
  /** The LoRA settings; the worker builds variables of the same keys and shapes (null: none, base only). */
  lora: CreateLoraOptions | null;
  /** `gradient_checkpointing`. */
  checkpointing: boolean;
  /** The model folder whose tokenizer `continue` requests decode with (mft eval's generation metrics). */
  tokenizerDir?: string;
  /** The LoRA values, all variables end to end in `loraKeys` order; the main thread writes them (LoraMirror). */
  loraValues: Float32Array;
  loraKeys: string[];
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
  | { kind: 'eval'; version: number; batch: Batch }
  /** Loss sums and correct argmaxes of a batch (mft eval), with or without the adapter. */
  | { kind: 'score'; version: number; batch: Batch; withLora: boolean; chunkRows?: number }
  /** A greedy continuation of a prompt (mft eval's generation metrics, `greedyContinuation`). */
  | {
      kind: 'continue';
      version: number;
      promptIds: number[];
      maxNewTokens: number;
      stopAtNewline: boolean;
      withLora: boolean;
    };

export type WorkerReply =
  | { kind: 'ready' }
  | {
      kind: 'done';
      lossSum: number;
      count: number;
      /** Gradients in `loraKeys` order (empty for eval), summed over the pieces in order. */
      grads: Float32Array[];
    }
  | { kind: 'scored'; nll: number; correct: number; count: number }
  | { kind: 'continued'; ids: number[]; text: string }
  | { kind: 'failed'; message: string; stack?: string };
