/**
 * How the rows of a step are shared among workers: all rows of all micro-batches, in order, cut
 * into `n` contiguous runs of (nearly) equal length. A worker's run becomes pieces, one per
 * micro-batch it touches; each piece remembers where its rows sit in its micro-batch, so dropout
 * masks are drawn for (step, micro-batch, row) whatever the split.
 */
import type { Batch } from '../model/batch.js';

/** Rows `[start, start + batch.batchSize)` of micro-batch `micro` (of `total` rows). */
export interface RowPiece {
  micro: number;
  start: number;
  total: number;
  batch: Batch;
}

/** Rows `[start, end)` of `batch` as a batch of their own (copies: a message carries only these rows). */
export function sliceRows(batch: Batch, start: number, end: number): Batch {
  const t = batch.seqLen;
  const cut = (a: Int32Array) => a.slice(start * t, end * t);
  return {
    batchSize: end - start,
    seqLen: t,
    inputIds: cut(batch.inputIds),
    labels: cut(batch.labels),
    segmentIds: cut(batch.segmentIds),
    positionIds: cut(batch.positionIds),
  };
}

/**
 * The pieces of each of `n` workers (a worker with no rows gets none).
 * @example splitRows([b16], 2) // [[rows 0-7 of b16], [rows 8-15 of b16]]
 */
export function splitRows(batches: readonly Batch[], n: number): RowPiece[][] {
  const total = batches.reduce((s, b) => s + b.batchSize, 0);
  const out: RowPiece[][] = [];
  for (let w = 0; w < n; w++) {
    const from = Math.floor((w * total) / n);
    const to = Math.floor(((w + 1) * total) / n);
    const pieces: RowPiece[] = [];
    let offset = 0; // first flat row of micro-batch m
    for (const [micro, b] of batches.entries()) {
      const start = Math.max(from, offset) - offset;
      const end = Math.min(to, offset + b.batchSize) - offset;
      if (end > start) pieces.push({ micro, start, total: b.batchSize, batch: sliceRows(b, start, end) });
      offset += b.batchSize;
    }
    out.push(pieces);
  }
  return out;
}
