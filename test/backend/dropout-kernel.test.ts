/**
 * Dropout as one kernel on mft's binding (wasm) against the mask drawn in JavaScript and a multiply
 * on the stock kernels: the same float32 values, bit for bit, at row offsets that cross 2^32 mask
 * elements and at sizes cut across threads.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend, useNativeKernels, useStockKernels } from '../../src/backend/index.js';
import { DROPOUT_KERNEL, dropout } from '../../src/model/index.js';
import { lcgValues } from '../helpers/lcg-values.js';
import { HAS_BINDING } from '../helpers/native-binding.js';

const CASES = [
  { rows: 37, cols: 129, rate: 0.1, seed: 7, start: 0, total: 37 },
  { rows: 3, cols: 1000, rate: 0.5, seed: 4294967295, start: 4294967, total: 4294970 }, // crosses 2^32
  { rows: 512, cols: 172, rate: 0.05, seed: 123456789, start: 512, total: 2048 }, // cut across threads
];

describe.skipIf(!HAS_BINDING)('dropout kernel', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(() => {
    useNativeKernels();
  });

  const run = (c: (typeof CASES)[number], i: number) => {
    const values = lcgValues(c.rows * c.cols, i + 1);
    values[0] = Number.NaN;
    values[1] = -3; // -3 * 0 is -0 both ways
    const x = tf.tensor2d(values, [c.rows, c.cols]);
    const y = dropout(x, c.rate, c.seed, { start: c.start, total: c.total });
    const out = y.dataSync() as Float32Array;
    tf.dispose([x, y]);
    return out;
  };

  test.each(CASES.map((c, i) => [c.rows, c.cols, c.start, c, i] as const))(
    '%i x %i from row %i: the kernel = mask in JS times x, bit for bit',
    (_r, _c, _s, c, i) => {
      useNativeKernels();
      expect(tf.getKernel(DROPOUT_KERNEL, 'wasm')).toBeDefined();
      const fused = run(c, i);
      useStockKernels();
      expect(tf.getKernel(DROPOUT_KERNEL, 'wasm')).toBeUndefined();
      const composite = run(c, i);
      expect(new Uint32Array(fused.buffer)).toEqual(new Uint32Array(composite.buffer));
      const kept = fused.filter((v) => v !== 0 && !Number.isNaN(v)).length;
      expect(Math.abs(kept / (fused.length - 2) - (1 - c.rate))).toBeLessThan(0.05);
    },
  );

  test('its gradient is the same mask', () => {
    useNativeKernels();
    const x = tf.tensor2d(lcgValues(64 * 33, 9), [64, 33]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(dropout(t, 0.3, 5)))(x);
    const y = dropout(x, 0.3, 5);
    const [gv, yv, xv] = [g.dataSync(), y.dataSync(), x.dataSync()];
    for (let j = 0; j < gv.length; j++)
      expect(Math.fround((xv[j] as number) * (gv[j] as number))).toBe(yv[j]);
    tf.dispose([x, g, y]);
  });
});
