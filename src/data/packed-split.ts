/**
 * A split of packed rows, decided before training: row i is a fixed list of samples, so the
 * position in the data is (epoch, index in that epoch's row order) and a resumed run continues
 * exactly. Rows are materialised on demand from the token store.
 *
 * The row layout is `writeRow`'s (row-layout.ts).
 */
import type { Batch } from '../model/batch.js';
import { mixSeed, Rng } from '../util/index.js';
import { type RowArrays, type RowDocument, rowArrays, writeRow } from './row-layout.js';
import { labelAt, type TokenStore } from './token-store.js';

/** One packed row (each array `seqLen` long). */
export type PackedRow = RowArrays;

/** The rows of one split (train or validation). */
export interface PackedSplit {
  readonly numRows: number;
  /** Samples (documents) in the split. */
  readonly numSamples: number;
  /** Tokens that are not padding. */
  readonly numTokens: number;
  /** Row `i` as four fresh arrays of `seqLen`. */
  row(i: number): PackedRow;
  /** The rows `rowIndices` as one micro-batch `[rowIndices.length, seqLen]`. */
  batch(rowIndices: number[]): Batch;
  /** The row order of an epoch: a permutation of 0..numRows-1 that depends only on (epoch, seed). */
  epochOrder(epoch: number, seed: number): number[];
  /** Store indices of the samples of row `i`, in row order. */
  rowSamples(i: number): number[];
}

/** Where each row's samples are: `samples[rowStarts[i] .. rowStarts[i+1])` are row i's. */
export interface SplitLayout {
  readonly samples: Int32Array;
  readonly rowStarts: Int32Array;
}

// Stream id of the epoch shuffles in `mixSeed(seed, EPOCH_STREAM, epoch)`.
const EPOCH_STREAM = 0x45504f;

/** A `PackedSplit` over a token store. */
export function createPackedSplit(
  store: TokenStore,
  layout: SplitLayout,
  seqLen: number,
  padId: number,
): PackedSplit {
  const numRows = layout.rowStarts.length - 1;
  let numTokens = 0;
  for (const s of layout.samples) numTokens += store.offsets[s + 1]! - store.offsets[s]!;

  // Sample s of the store as a row document (labels stored as flags or as ids).
  const document = (s: number): RowDocument => {
    const a = store.offsets[s]!;
    return {
      length: store.offsets[s + 1]! - a,
      id: (t) => store.ids[a + t]!,
      label: (t) => labelAt(store, a + t),
    };
  };
  // Write row i as row `at` of the arrays.
  const fillRow = (i: number, out: PackedRow, at: number): void => {
    if (!(Number.isInteger(i) && i >= 0 && i < numRows)) {
      throw new RangeError(`PackedSplit.row: row index ${i} is outside 0..${numRows - 1}`);
    }
    const docs: RowDocument[] = [];
    for (let k = layout.rowStarts[i]!; k < layout.rowStarts[i + 1]!; k++)
      docs.push(document(layout.samples[k]!));
    writeRow(out, at, seqLen, padId, docs);
  };

  return {
    numRows,
    numSamples: layout.samples.length,
    numTokens,
    row(i) {
      const out = rowArrays(seqLen);
      fillRow(i, out, 0);
      return out;
    },
    batch(rowIndices) {
      const out = rowArrays(rowIndices.length * seqLen);
      rowIndices.forEach((i, b) => {
        fillRow(i, out, b);
      });
      return { batchSize: rowIndices.length, seqLen, ...out };
    },
    epochOrder(epoch, seed) {
      const order = Array.from({ length: numRows }, (_, i) => i);
      return new Rng(mixSeed(seed, EPOCH_STREAM, epoch)).shuffle(order);
    },
    rowSamples(i) {
      return Array.from(layout.samples.subarray(layout.rowStarts[i]!, layout.rowStarts[i + 1]!));
    },
  };
}

/**
 * Optimizer steps in one epoch: ceil(numRows / (microBatchSize * gradAccum)). Every row is seen
 * once per epoch; the last step may have fewer micro-batches (and its last micro-batch fewer rows),
 * which is harmless because the loss is normalised by the trained tokens of the whole step.
 * @example
 *   stepsPerEpoch({numRows: 10}, 2, 2); // 3 (steps of 4, 4 and 2 rows)
 */
export function stepsPerEpoch(split: { numRows: number }, microBatchSize: number, gradAccum: number): number {
  return Math.ceil(split.numRows / (microBatchSize * gradAccum));
}

/**
 * The micro-batches (lists of row indices) of step `step` (0-based, within the epoch) given the
 * epoch's row order: rows order[step*M*G ..][..M*G] cut into micro-batches of M.
 * @example
 *   stepMicroBatches([4, 0, 3, 1, 2], 1, 2, 2); // [[2]]
 */
export function stepMicroBatches(
  order: number[],
  step: number,
  microBatchSize: number,
  gradAccum: number,
): number[][] {
  const perStep = microBatchSize * gradAccum;
  const rows = order.slice(step * perStep, (step + 1) * perStep);
  const out: number[][] = [];
  for (let i = 0; i < rows.length; i += microBatchSize) out.push(rows.slice(i, i + microBatchSize));
  return out;
}
