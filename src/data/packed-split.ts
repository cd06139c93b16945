/**
 * A split of packed rows, decided before training: row i is a fixed list of samples, so the
 * position in the data is (epoch, index in that epoch's row order) and a resumed run continues
 * exactly. Rows are materialised on demand from the token store.
 *
 * In a row of `seqLen` tokens holding documents d = 0, 1, ...:
 *   inputIds[t]    the document's tokens, then pads (the tokenizer's pad id, else EOS, else 0)
 *   labels[t]      the next token of the same document when it carries loss, else -100; the last
 *                  token of each document and every pad: -100
 *   segmentIds[t]  d for document d; pads form one more segment of their own (no empty attention row)
 *   positionIds[t] position within the document, from 0 (pads count from 0 too)
 */

import { type Batch, IGNORE_INDEX } from '../model/batch.js';
import { mixSeed, Rng } from '../util/index.js';
import { labelAt, type TokenStore } from './token-store.js';

/** One packed row (each array `seqLen` long). */
export interface PackedRow {
  inputIds: Int32Array;
  labels: Int32Array;
  segmentIds: Int32Array;
  positionIds: Int32Array;
}

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

  // Write row i into the four arrays at `at` (a multiple of seqLen).
  const fillRow = (i: number, out: PackedRow, at: number): void => {
    if (!(Number.isInteger(i) && i >= 0 && i < numRows)) {
      throw new RangeError(`PackedSplit.row: row index ${i} is outside 0..${numRows - 1}`);
    }
    let pos = 0;
    let segment = 0;
    for (let k = layout.rowStarts[i]!; k < layout.rowStarts[i + 1]!; k++) {
      const s = layout.samples[k]!;
      const a = store.offsets[s]!;
      const len = store.offsets[s + 1]! - a;
      for (let t = 0; t < len; t++) {
        const p = at + pos + t;
        out.inputIds[p] = store.ids[a + t]!;
        out.labels[p] = t < len - 1 ? labelAt(store, a + t + 1) : IGNORE_INDEX;
        out.segmentIds[p] = segment;
        out.positionIds[p] = t;
      }
      pos += len;
      segment += 1;
    }
    for (let t = pos; t < seqLen; t++) {
      out.inputIds[at + t] = padId;
      out.labels[at + t] = IGNORE_INDEX;
      out.segmentIds[at + t] = segment;
      out.positionIds[at + t] = t - pos;
    }
  };

  const arrays = (n: number): PackedRow => ({
    inputIds: new Int32Array(n),
    labels: new Int32Array(n),
    segmentIds: new Int32Array(n),
    positionIds: new Int32Array(n),
  });

  return {
    numRows,
    numSamples: layout.samples.length,
    numTokens,
    row(i) {
      const out = arrays(seqLen);
      fillRow(i, out, 0);
      return out;
    },
    batch(rowIndices) {
      const out = arrays(rowIndices.length * seqLen);
      rowIndices.forEach((i, b) => {
        fillRow(i, out, b * seqLen);
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
