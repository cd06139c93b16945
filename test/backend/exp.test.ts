/** Exp on mft's binding (wasm, from 4096 elements) against float64 exp and the stock kernel. */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  initBackend,
  nativeKernelStatus,
  useNativeKernels,
  useStockKernels,
} from '../../src/backend/index.js';
import { lcgValues } from '../helpers/lcg-values.js';
import { HAS_BINDING } from '../helpers/native-binding.js';

// Every range exp meets in a step (logits minus their max, masked scores at -1e9), its edges
// (-87.34: below it e^x is under the smallest normal float; 88.72: above it +inf) and odd values.
const EDGES = [-1e9, -104, -87.4, -87.33, -50, -1, -1e-7, 0, 1e-7, 0.5, 1, 10, 88.7, 88.73, 1000];
const SPECIAL = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
const values = Float32Array.from([
  ...EDGES,
  ...SPECIAL,
  ...Array.from(lcgValues(60_000, 3), (v) => 90 * v), // uniform in [-90, 90)
]);

describe.skipIf(!HAS_BINDING)('Exp on the binding', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    useNativeKernels();
  });
  afterAll(() => {
    useNativeKernels();
  });

  const run = () => {
    const x = tf.tensor1d(values);
    const y = tf.exp(x);
    const out = y.dataSync() as Float32Array;
    tf.dispose([x, y]);
    return out;
  };

  test('registered, and named in the status', () => {
    expect(nativeKernelStatus()?.detail).toMatch(/Exp from 4096/);
  });

  test('within 2 ulp of float64 exp; 0 below -87.33, +inf above 88.72, NaN for NaN', () => {
    const got = run();
    for (let i = 0; i < values.length; i++) {
      const x = values[i] as number;
      const y = got[i] as number;
      if (Number.isNaN(x)) expect(y).toBeNaN();
      else if (x < -87.33654) expect(y).toBe(0);
      else if (x > 88.72283) expect(y).toBe(Number.POSITIVE_INFINITY);
      else expect(Math.abs(y - Math.exp(x)) / Math.exp(x), `exp(${x})`).toBeLessThan(2.4e-7);
    }
  });

  test('agrees with the stock kernel to 2 ulp', () => {
    const got = run();
    useStockKernels();
    const stock = run();
    useNativeKernels();
    for (let i = 0; i < values.length; i++) {
      const [a, b] = [got[i] as number, stock[i] as number];
      if (!Number.isFinite(b) || b < 1.2e-38) continue; // the edges, checked above
      expect(Math.abs(a - b) / b).toBeLessThan(2.4e-7);
    }
  });
});
