/**
 * Dynamic batching: rows grouped by length under a token budget, and the layout of padded / packed
 * rows (labels shifted, one segment per sample, positions from 0, pads a segment of their own).
 */
import { describe, expect, test } from 'vitest';
import { buildBatch, type EvalSample, lengthBatches, planBatches } from '../../src/eval/index.js';
import { Rng } from '../../src/util/index.js';

const sample = (ids: number[], labels: number[] = ids): EvalSample => ({
  ids: Int32Array.from(ids),
  labels: Int32Array.from(labels),
});

describe('lengthBatches', () => {
  test('longest first, padded to the first row, rows added while rows x length fits', () => {
    // order 8, 5, 3, 2: [8, 5] = 2 x 8 = 16 fits; + 3 would be 24; then [3, 2] = 2 x 3.
    expect(lengthBatches([3, 8, 5, 2], { tokenBudget: 16 })).toEqual([
      [1, 2],
      [0, 3],
    ]);
  });

  test('a row longer than the budget is a batch of its own', () => {
    expect(lengthBatches([10, 2, 2], { tokenBudget: 4 })).toEqual([[0], [1, 2]]);
  });

  test('the attention budget limits rows x heads x length^2', () => {
    // 4 rows of 8 with 2 heads: 2 rows = 2 * 2 * 64 = 256 <= 256, 3 rows = 384 > 256.
    expect(lengthBatches([8, 8, 8, 8], { tokenBudget: 1000, attentionBudget: 256, numHeads: 2 })).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  test('every row once, and every batch of two or more rows within the budget', () => {
    const rng = new Rng(3);
    const lengths = Array.from({ length: 300 }, () => 1 + rng.int(100));
    const batches = lengthBatches(lengths, { tokenBudget: 256 });
    expect(
      batches
        .flat()
        .slice()
        .sort((a, b) => a - b),
    ).toEqual(lengths.map((_, i) => i));
    for (const b of batches) {
      const width = Math.max(...b.map((i) => lengths[i]!));
      expect(width).toBe(lengths[b[0]!]);
      if (b.length > 1) expect(b.length * width).toBeLessThanOrEqual(256);
    }
  });
});

describe('buildBatch', () => {
  test('two samples packed in a row of 6: shifted labels, segments, positions, pads', () => {
    const b = buildBatch([sample([5, 6, 7]), sample([8, 9])], [[0, 1]], 6, 0);
    expect(b.batchSize).toBe(1);
    expect(b.seqLen).toBe(6);
    expect(Array.from(b.inputIds)).toEqual([5, 6, 7, 8, 9, 0]);
    expect(Array.from(b.labels)).toEqual([6, 7, -100, 9, -100, -100]);
    expect(Array.from(b.segmentIds)).toEqual([0, 0, 0, 1, 1, 2]);
    expect(Array.from(b.positionIds)).toEqual([0, 1, 2, 0, 1, 0]);
  });

  test('one sample per row, padded; -100 labels stay -100 after the shift', () => {
    const b = buildBatch([sample([1, 2, 3, 4], [-100, -100, 3, 4]), sample([7, 8])], [[0], [1]], 4, 9);
    expect(Array.from(b.inputIds)).toEqual([1, 2, 3, 4, 7, 8, 9, 9]);
    expect(Array.from(b.labels)).toEqual([-100, 3, 4, -100, 8, -100, -100, -100]);
    expect(Array.from(b.segmentIds)).toEqual([0, 0, 0, 0, 0, 0, 1, 1]);
    expect(Array.from(b.positionIds)).toEqual([0, 1, 2, 3, 0, 1, 0, 1]);
  });

  test('a row that does not fit is a bug, not silently cut', () => {
    expect(() => buildBatch([sample([1, 2, 3])], [[0]], 2, 0)).toThrow(/overflows row 0/);
  });
});

describe('planBatches', () => {
  const samples = [5, 3, 7, 2, 6, 1].map((n) => sample(Array.from({ length: n }, (_, i) => i + 1)));

  test('one sample per row: batches padded to their longest row, real tokens counted', () => {
    const plan = planBatches(samples, { tokenBudget: 14 });
    expect(plan.map((p) => p.rows)).toEqual([
      [[2], [4]],
      [[0], [1]],
      [[3], [5]],
    ]);
    expect(plan.map((p) => p.seqLen)).toEqual([7, 5, 2]);
    expect(plan.map((p) => p.tokens)).toEqual([13, 8, 3]);
  });

  test('packed: every sample once, rows within the pack length', () => {
    const plan = planBatches(samples, { tokenBudget: 16 }, 8);
    const rows = plan.flatMap((p) => p.rows);
    expect(
      rows
        .flat()
        .slice()
        .sort((a, b) => a - b),
    ).toEqual([0, 1, 2, 3, 4, 5]);
    for (const row of rows)
      expect(row.reduce((s, i) => s + samples[i]!.ids.length, 0)).toBeLessThanOrEqual(8);
    expect(rows.length).toBe(3); // 24 tokens in rows of 8: 7+1, 6+2, 5+3
    expect(plan.reduce((s, p) => s + p.tokens, 0)).toBe(24);
  });
});
