/**
 * Evaluation batches: samples of different lengths grouped by length under a token budget
 * (dynamic batching), each sample alone in its row and padded to the longest of its batch; or
 * packed several to a row with document masking. Both give the same losses: a document attends
 * only to itself (segment ids) and its positions start at 0 either way.
 *
 * The row layout is the data stage's `writeRow`.
 */
import { packBestFitDecreasing, rowArrays, sampleDocument, writeRow } from '../data/index.js';
import type { Batch } from '../model/index.js';

/** One sample to evaluate: its tokens and labels in the Hugging Face convention (unshifted). */
export interface EvalSample {
  /** Token ids. */
  readonly ids: Int32Array;
  /** `labels[t]` is the target of the prediction made at t - 1; -100 carries no loss. */
  readonly labels: Int32Array;
}

/** Limits on one batch. */
export interface BatchLimits {
  /** Most token slots (rows x padded length) in one batch. */
  tokenBudget: number;
  /** Most attention scores (rows x heads x length^2) in one batch; a single row may exceed it. */
  attentionBudget?: number;
  /** Attention heads of the model (for `attentionBudget`). */
  numHeads?: number;
}

/** Default token budget of an evaluation batch. */
export const DEFAULT_TOKEN_BUDGET = 4096;
/** Default budget of attention scores in one batch: 2^26 floats (256 MiB). */
export const DEFAULT_ATTENTION_BUDGET = 2 ** 26;

/**
 * Group rows of the given lengths into batches: longest first, each batch padded to its first
 * (longest) row, rows added while rows x length stays within the token budget (and the attention
 * scores within theirs). Every row is in exactly one batch; a row longer than the budget is a batch
 * of its own.
 * @param lengths length of each row
 * @returns batches of row indices, longest batches first
 * @example lengthBatches([3, 8, 5, 2], { tokenBudget: 16 }); // [[1, 2], [0, 3]]
 */
export function lengthBatches(lengths: readonly number[], limits: BatchLimits): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const heads = limits.numHeads ?? 1;
  const attention = limits.attentionBudget ?? Number.POSITIVE_INFINITY;
  const batches: number[][] = [];
  let current: number[] = [];
  let width = 0;
  for (const i of order) {
    const rows = current.length + 1;
    const fits = rows * width <= limits.tokenBudget && rows * heads * width * width <= attention;
    if (current.length > 0 && fits) {
      current.push(i);
      continue;
    }
    if (current.length > 0) batches.push(current);
    current = [i];
    width = lengths[i]!;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * One batch `[rows.length, seqLen]` whose row r holds the samples `rows[r]` one after another,
 * then pads (see the module comment for the layout).
 * @param padId the id of pad tokens (they carry no loss and attend only to pads)
 */
export function buildBatch(
  samples: readonly EvalSample[],
  rows: readonly (readonly number[])[],
  seqLen: number,
  padId: number,
): Batch {
  const out = rowArrays(rows.length * seqLen);
  rows.forEach((row, r) => {
    writeRow(
      out,
      r,
      seqLen,
      padId,
      row.map((s) => sampleDocument(samples[s]!)),
    );
  });
  return { batchSize: rows.length, seqLen, ...out };
}

/** A batch to evaluate, and the real (non-pad) tokens it holds. */
export interface PlannedBatch {
  /** Rows of sample indices. */
  rows: number[][];
  /** Padded row length. */
  seqLen: number;
  /** Tokens that are not padding. */
  tokens: number;
}

/**
 * Plan the batches of an evaluation: one sample per row grouped by length (`packLength` absent),
 * or samples packed into rows of at most `packLength` tokens by best-fit decreasing, then grouped.
 * Each batch is padded to its longest row.
 * @example
 *   const plan = planBatches(samples, { tokenBudget: 4096 });
 *   for (const p of plan) useBatch(buildBatch(samples, p.rows, p.seqLen, 0));
 */
export function planBatches(
  samples: readonly EvalSample[],
  limits: BatchLimits,
  packLength?: number,
): PlannedBatch[] {
  const lengths = samples.map((s) => s.ids.length);
  let rows: number[][];
  if (packLength === undefined) {
    rows = lengths.map((_, i) => [i]);
  } else {
    const longest = lengths.reduce((m, n) => Math.max(m, n), 0);
    if (longest > packLength) {
      throw new Error(
        `Argument 'packLength' passed to 'planBatches' is ${packLength}, a sample has ${longest} tokens`,
      );
    }
    rows = packBestFitDecreasing(lengths, packLength, 0);
  }
  const rowLengths = rows.map((row) => row.reduce((sum, s) => sum + lengths[s]!, 0));
  // A batch's first row is its longest, so it sets the padded length (packed rows included).
  return lengthBatches(rowLengths, limits).map((batch) => ({
    rows: batch.map((r) => rows[r]!),
    seqLen: rowLengths[batch[0]!]!,
    tokens: batch.reduce((sum, r) => sum + rowLengths[r]!, 0),
  }));
}
