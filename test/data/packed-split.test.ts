import { describe, expect, test } from 'vitest';
import { createPackedSplit, stepMicroBatches, stepsPerEpoch } from '../../src/data/packed-split.js';
import { TokenStoreBuilder } from '../../src/data/token-store.js';

const M = -100;
const i32 = (a: number[]) => Int32Array.from(a);

// Three samples (ids, unshifted labels): A trains all, B masks its first two tokens, C is one token.
function store() {
  const b = new TokenStoreBuilder();
  b.push({ ids: i32([1, 10, 11, 2]), labels: i32([1, 10, 11, 2]) }); // A
  b.push({ ids: i32([1, 20, 21, 22, 2]), labels: i32([M, M, 21, 22, 2]) }); // B
  b.push({ ids: i32([30]), labels: i32([30]) }); // C
  return b.finish();
}

describe('createPackedSplit rows', () => {
  test('packed row: labels shifted within each document, last token and pads -100, pads own segment', () => {
    // Row 0 = [B, C], row 1 = [A]; seqLen 8; pad id 0.
    const split = createPackedSplit(store(), { samples: i32([1, 2, 0]), rowStarts: i32([0, 2, 3]) }, 8, 0);
    expect(split.numRows).toBe(2);
    expect(split.numSamples).toBe(3);
    expect(split.numTokens).toBe(10);
    const r0 = split.row(0);
    expect(Array.from(r0.inputIds)).toEqual([1, 20, 21, 22, 2, 30, 0, 0]);
    expect(Array.from(r0.labels)).toEqual([M, 21, 22, 2, M, M, M, M]);
    expect(Array.from(r0.segmentIds)).toEqual([0, 0, 0, 0, 0, 1, 2, 2]);
    expect(Array.from(r0.positionIds)).toEqual([0, 1, 2, 3, 4, 0, 0, 1]);
    const r1 = split.row(1);
    expect(Array.from(r1.inputIds)).toEqual([1, 10, 11, 2, 0, 0, 0, 0]);
    expect(Array.from(r1.labels)).toEqual([10, 11, 2, M, M, M, M, M]);
    expect(Array.from(r1.segmentIds)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(Array.from(r1.positionIds)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
    expect(split.rowSamples(0)).toEqual([1, 2]);
  });

  test('a full row has no pad segment', () => {
    const split = createPackedSplit(store(), { samples: i32([0, 2]), rowStarts: i32([0, 2]) }, 5, 7);
    const r = split.row(0);
    expect(Array.from(r.inputIds)).toEqual([1, 10, 11, 2, 30]);
    expect(Array.from(r.labels)).toEqual([10, 11, 2, M, M]);
    expect(Array.from(r.segmentIds)).toEqual([0, 0, 0, 0, 1]);
  });

  test('batch() lays rows out row-major [B, T]', () => {
    const split = createPackedSplit(store(), { samples: i32([1, 2, 0]), rowStarts: i32([0, 2, 3]) }, 8, 0);
    const batch = split.batch([1, 0, 1]);
    expect(batch.batchSize).toBe(3);
    expect(batch.seqLen).toBe(8);
    const r0 = split.row(0);
    const r1 = split.row(1);
    for (const key of ['inputIds', 'labels', 'segmentIds', 'positionIds'] as const) {
      expect(Array.from(batch[key])).toEqual([...r1[key], ...r0[key], ...r1[key]]);
    }
    expect(() => split.row(2)).toThrow(/row index 2 is outside 0..1/);
  });

  test('epochOrder is a permutation fixed by (epoch, seed)', () => {
    const n = 50;
    const samples = i32(Array.from({ length: n }, () => 2));
    const split = createPackedSplit(
      store(),
      { samples, rowStarts: i32(Array.from({ length: n + 1 }, (_, i) => i)) },
      4,
      0,
    );
    const o = split.epochOrder(0, 42);
    expect([...o].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(split.epochOrder(0, 42)).toEqual(o);
    expect(split.epochOrder(1, 42)).not.toEqual(o);
    expect(split.epochOrder(0, 43)).not.toEqual(o);
  });
});

describe('steps', () => {
  test('stepsPerEpoch rounds up: every row is seen once per epoch', () => {
    expect(stepsPerEpoch({ numRows: 10 }, 2, 2)).toBe(3);
    expect(stepsPerEpoch({ numRows: 8 }, 2, 2)).toBe(2);
    expect(stepsPerEpoch({ numRows: 1 }, 4, 8)).toBe(1);
  });

  test('stepMicroBatches cuts a step into micro-batches of the epoch order', () => {
    const order = [4, 0, 3, 1, 2, 9, 8, 7, 6, 5];
    expect(stepMicroBatches(order, 0, 2, 2)).toEqual([
      [4, 0],
      [3, 1],
    ]);
    expect(stepMicroBatches(order, 2, 2, 2)).toEqual([[6, 5]]);
    expect(stepMicroBatches([4, 0, 3, 1, 2], 1, 2, 2)).toEqual([[2]]);
    const all = Array.from({ length: stepsPerEpoch({ numRows: 10 }, 3, 2) }, (_, s) =>
      stepMicroBatches(order, s, 3, 2).flat(),
    );
    expect(all.flat()).toEqual(order);
  });
});
