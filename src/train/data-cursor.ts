/**
 * Which packed rows each optimizer step trains on. The rows of the whole dataset are decided
 * before training (the data stage packs and caches them), and each epoch visits them in the order
 * `epochOrder(epoch, seed)`; so the position in the data is just (epoch, row_in_epoch), two
 * integers a checkpoint stores to resume exactly.
 *
 * A step takes `micro_batch_size * gradient_accumulation_steps` rows, cut into micro-batches of
 * `micro_batch_size`. The last step of an epoch takes what is left (fewer or smaller micro-batches;
 * the loss is token-weighted, so a short step is an ordinary one) and never reaches into the next
 * epoch: steps per epoch = ceil(rows / (micro_batch_size * gradient_accumulation_steps)).
 */

import { stepMicroBatches, stepsPerEpoch } from '../data/index.js';
import { type Batch, IGNORE_INDEX } from '../model/index.js';
import { MftError } from '../util/index.js';

/** The part of a packed split (`PackedSplit` of src/data) the trainer reads. */
export interface TrainSplit {
  readonly numRows: number;
  /** Micro-batch of the given rows. */
  batch(rowIndices: number[]): Batch;
  /** A deterministic permutation of 0..numRows-1 for an epoch. */
  epochOrder(epoch: number, seed: number): number[];
}

/**
 * Optimizer steps of the run: `max_steps` when set, else ceil(num_epochs * steps per epoch).
 * @example totalSteps({ max_steps: null, num_epochs: 1.5 }, 100, 8, 1) // 20 = ceil(1.5 * 13)
 */
export function totalSteps(
  cfg: { readonly max_steps: number | null; readonly num_epochs: number },
  numRows: number,
  microBatchSize: number,
  gradAccum: number,
): number {
  if (numRows <= 0) {
    throw new MftError({
      where: 'dataset',
      message: 'the training split has no rows',
      fix: 'check the dataset files and val_set_size',
    });
  }
  if (cfg.max_steps != null) return cfg.max_steps;
  return Math.max(1, Math.ceil(cfg.num_epochs * stepsPerEpoch({ numRows }, microBatchSize, gradAccum)));
}

/** Rows of one optimizer step. */
export interface StepRows {
  /** Row indices of each micro-batch. */
  microBatches: number[][];
  /** Epoch these rows belong to. */
  epoch: number;
}

/** The data position of a run; `next()` hands out the rows of the next step and advances. */
export class DataCursor {
  private order: number[] | null = null;

  constructor(
    private readonly split: TrainSplit,
    private readonly seed: number,
    private readonly microBatchSize: number,
    private readonly gradAccum: number,
    /** 0-based epoch the cursor is in. */
    public epoch = 0,
    /** Index into this epoch's order of the next row. */
    public rowInEpoch = 0,
  ) {
    if (rowInEpoch < 0 || rowInEpoch >= split.numRows || rowInEpoch % (microBatchSize * gradAccum) !== 0) {
      throw new MftError({
        where: 'trainer_state.json',
        message: `row_in_epoch ${rowInEpoch} is not a step boundary of the training split (${split.numRows} rows, ${microBatchSize * gradAccum} per step)`,
        fix: 'the dataset changed since the checkpoint: resume with the same data, or start a new run',
      });
    }
  }

  /** Fractional epochs done: epoch + rowInEpoch / rows. */
  get epochFloat(): number {
    return this.epoch + this.rowInEpoch / this.split.numRows;
  }

  /** Rows of the next step; advances the position. */
  next(): StepRows {
    this.order ??= this.split.epochOrder(this.epoch, this.seed);
    const perStep = this.microBatchSize * this.gradAccum;
    const microBatches = stepMicroBatches(
      this.order,
      this.rowInEpoch / perStep,
      this.microBatchSize,
      this.gradAccum,
    );
    const epoch = this.epoch;
    this.rowInEpoch += microBatches.reduce((n, mb) => n + mb.length, 0);
    if (this.rowInEpoch >= this.split.numRows) {
      this.epoch += 1;
      this.rowInEpoch = 0;
      this.order = null;
    }
    return { microBatches, epoch };
  }
}

/** Number of tokens that carry loss in a batch (labels != -100). */
export function trainedTokens(batch: Batch): number {
  let n = 0;
  for (const l of batch.labels) if (l !== IGNORE_INDEX) n++;
  return n;
}
