import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { clipByGlobalNorm, globalNorm } from '../../src/train/clip.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function grads(): Map<string, tf.Tensor> {
  return new Map<string, tf.Tensor>([
    ['a', tf.tensor([3, 0, 0])],
    ['b', tf.tensor2d([[0, 4]])],
  ]);
}

describe('clipByGlobalNorm', () => {
  test('the global norm is the norm of all tensors concatenated', async () => {
    const g = grads();
    expect(await globalNorm(g)).toBeCloseTo(5, 6);
    tf.dispose([...g.values()]);
  });

  test('scales every tensor by max_norm / (norm + 1e-6) when over the limit, returns the norm before', async () => {
    const g = grads();
    const before = tf.memory().numTensors;
    const norm = await clipByGlobalNorm(g, 1);
    expect(norm).toBeCloseTo(5, 6);
    const coef = 1 / (5 + 1e-6);
    expect(Array.from(g.get('a')!.dataSync())).toEqual([3 * coef, 0, 0].map(Math.fround));
    expect(g.get('b')!.dataSync()[1]).toBeCloseTo(4 * coef, 6);
    expect(await globalNorm(g)).toBeCloseTo(1, 5);
    expect(tf.memory().numTensors).toBe(before); // old tensors disposed
    tf.dispose([...g.values()]);
  });

  test('leaves gradients under the limit, or with max_grad_norm null, untouched', async () => {
    for (const max of [10, null]) {
      const g = grads();
      const a = g.get('a');
      expect(await clipByGlobalNorm(g, max)).toBeCloseTo(5, 6);
      expect(g.get('a')).toBe(a);
      tf.dispose([...g.values()]);
    }
  });

  test('a NaN gradient gives a NaN norm (the loop stops on it)', async () => {
    const g = new Map([['a', tf.tensor([1, Number.NaN])]]);
    expect(Number.isNaN(await clipByGlobalNorm(g, 1))).toBe(true);
    tf.dispose([...g.values()]);
  });
});
