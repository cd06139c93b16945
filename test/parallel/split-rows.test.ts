/** How a step's rows are cut among workers, and the dropout masks of a worker's share. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, test } from 'vitest';
import type { Batch } from '../../src/model/batch.js';
import { dropout } from '../../src/model/index.js';
import { splitRows } from '../../src/parallel/index.js';

function batch(rows: number, seqLen: number, first: number): Batch {
  const ids = Int32Array.from({ length: rows * seqLen }, (_, i) => first * seqLen + i);
  return { batchSize: rows, seqLen, inputIds: ids, labels: ids, segmentIds: ids, positionIds: ids };
}

describe('splitRows', () => {
  test('every row of every micro-batch goes to exactly one worker, in order, in runs of nearly equal length', () => {
    const batches = [batch(3, 2, 0), batch(3, 2, 3)];
    const parts = splitRows(batches, 4);
    expect(
      parts.map((p) => p.map(({ micro, start, total, batch: b }) => [micro, start, b.batchSize, total])),
    ).toEqual([[[0, 0, 1, 3]], [[0, 1, 2, 3]], [[1, 0, 1, 3]], [[1, 1, 2, 3]]]);
    const rows = parts.flat().flatMap((p) => [...p.batch.inputIds]);
    expect(rows).toEqual([...batches[0]!.inputIds, ...batches[1]!.inputIds]);
    // more workers than rows: the extra ones get nothing
    expect(splitRows([batch(2, 2, 0)], 3).map((p) => p.length)).toEqual([0, 1, 1]);
  });
});

describe('dropout of a share of the rows', () => {
  test("rows [start, start + n) get exactly those rows of the whole input's mask", () => {
    const [N, D] = [7, 5];
    const x = tf.ones([N, D]) as tf.Tensor2D;
    const whole = dropout(x, 0.3, 1234).arraySync() as number[][];
    expect(whole.flat().filter((v) => v === 0).length).toBeGreaterThan(0);
    for (const [start, n] of [
      [0, 3],
      [3, 4],
      [2, 1],
    ] as const) {
      const part = dropout(tf.ones([n, D]), 0.3, 1234, { start, total: N }).arraySync();
      expect(part).toEqual(whole.slice(start, start + n));
    }
    expect(() => dropout(tf.ones([3, D]), 0.3, 1, { start: 5, total: N })).toThrow(/within 7, got start 5/);
  });
});
