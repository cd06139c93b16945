import { describe, expect, test } from 'vitest';
import type { Batch } from '../../src/model/batch.js';
import { DataCursor, type TrainSplit, totalSteps, trainedTokens } from '../../src/train/data-cursor.js';

function split(numRows: number): TrainSplit {
  return {
    numRows,
    batch: () => {
      throw new Error('not used');
    },
    // a permutation that differs per epoch and seed: rotate by epoch + seed
    epochOrder: (epoch, seed) => Array.from({ length: numRows }, (_, i) => (i + epoch + seed) % numRows),
  };
}

describe('DataCursor', () => {
  test('steps take micro_batch_size x gradient_accumulation_steps rows; the last step of an epoch takes the rest', () => {
    const c = new DataCursor(split(10), 0, 2, 2);
    expect(c.next()).toEqual({
      microBatches: [
        [0, 1],
        [2, 3],
      ],
      epoch: 0,
    });
    expect(c.next()).toEqual({
      microBatches: [
        [4, 5],
        [6, 7],
      ],
      epoch: 0,
    });
    expect(c.next()).toEqual({ microBatches: [[8, 9]], epoch: 0 });
    // next epoch: its own order
    expect(c.epoch).toBe(1);
    expect(c.rowInEpoch).toBe(0);
    expect(c.next()).toEqual({
      microBatches: [
        [1, 2],
        [3, 4],
      ],
      epoch: 1,
    });
    expect(c.epochFloat).toBeCloseTo(1.4, 10);
  });

  test('a cursor built at a saved position continues the same sequence', () => {
    const a = new DataCursor(split(7), 3, 3, 1);
    const seq: number[][][] = [];
    for (let i = 0; i < 6; i++) seq.push(a.next().microBatches);
    const b0 = new DataCursor(split(7), 3, 3, 1);
    for (let i = 0; i < 4; i++) b0.next();
    const b = new DataCursor(split(7), 3, 3, 1, b0.epoch, b0.rowInEpoch);
    expect([b.next().microBatches, b.next().microBatches]).toEqual(seq.slice(4));
  });

  test('a saved position outside the data is a user error', () => {
    expect(() => new DataCursor(split(4), 0, 1, 1, 0, 9)).toThrow(
      /row_in_epoch 9 is not a step boundary of the training split \(4 rows, 1 per step\)/,
    );
    expect(() => new DataCursor(split(8), 0, 2, 2, 0, 2)).toThrow(/row_in_epoch 2 is not a step boundary/);
  });
});

describe('step counts', () => {
  test('steps per epoch round up; max_steps wins over num_epochs; fractional epochs round up', () => {
    expect(totalSteps({ max_steps: null, num_epochs: 1 }, 10, 2, 2)).toBe(3);
    expect(totalSteps({ max_steps: null, num_epochs: 1 }, 8, 2, 2)).toBe(2);
    expect(totalSteps({ max_steps: null, num_epochs: 2 }, 10, 2, 2)).toBe(6);
    expect(totalSteps({ max_steps: null, num_epochs: 1.5 }, 100, 8, 1)).toBe(20); // ceil(1.5 * 13);
    expect(totalSteps({ max_steps: 7, num_epochs: 2 }, 10, 2, 2)).toBe(7);
    expect(() => totalSteps({ max_steps: null, num_epochs: 1 }, 0, 2, 2)).toThrow(
      /training split has no rows/,
    );
  });

  test('trained tokens are the labels that are not -100', () => {
    const b: Batch = {
      batchSize: 1,
      seqLen: 4,
      inputIds: new Int32Array(4),
      labels: Int32Array.from([-100, 5, 0, -100]),
      segmentIds: new Int32Array(4),
      positionIds: new Int32Array(4),
    };
    expect(trainedTokens(b)).toBe(2);
  });
});
