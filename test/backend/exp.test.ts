/** Exp and row logsumexp on mft's binding (wasm) against float64 and the stock kernels. */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  initBackend,
  nativeKernelStatus,
  useNativeKernels,
  useStockKernels,
} from '../../src/backend/index.js';
import { LOG_SUM_EXP_KERNEL, rowLogSumExp } from '../../src/model/index.js';
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
    expect(nativeKernelStatus()?.detail).toMatch(/Exp and Softmax from 4096/);
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

  test('row logsumexp = float64 logsumexp, masked scores, large logits and -inf rows included; its gradient is softmax (float64)', () => {
    const [rows, cols] = [70, 1003];
    const x = Float32Array.from(lcgValues(rows * cols, 11), (v) => 20 * v);
    for (let r = 0; r < rows; r++) {
      x[r * cols + (r % cols)] = 80 - r; // a large logit
      x[r * cols + ((r + 1) % cols)] = -1e9; // a masked score
    }
    x.fill(Number.NEGATIVE_INFINITY, 5 * cols, 6 * cols); // a row without a finite logit
    x[7 * cols + 500] = Number.NaN; // a NaN logit makes its row's logsumexp NaN
    expect(tf.getKernel(LOG_SUM_EXP_KERNEL, 'wasm')).toBeDefined();
    const z = tf.tensor2d(x, [rows, cols]);
    const got = rowLogSumExp(z).dataSync();
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const m = Math.max(...row);
      const want =
        m === Number.NEGATIVE_INFINITY ? m : m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      if (Number.isNaN(want)) expect(got[r], `row ${r}`).toBeNaN();
      else if (want === Number.NEGATIVE_INFINITY) expect(got[r]).toBe(want);
      else
        expect(Math.abs((got[r] as number) - want), `row ${r}`).toBeLessThan(
          2e-6 * Math.max(1, Math.abs(want)),
        );
    }
    const w = tf.tensor1d(lcgValues(rows, 12));
    const finite = tf.tensor2d(x.subarray(0, 4 * cols), [4, cols]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(rowLogSumExp(t as tf.Tensor2D), tf.slice(w, 0, 4))))(
      finite,
    );
    // the gradient kernel: w_r exp(z - logsumexp(z_r)), against float64
    const dz = g.dataSync();
    const wr = w.dataSync();
    for (let r = 0; r < 4; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      for (let c = 0; c < cols; c++) {
        const want = (wr[r] as number) * Math.exp((row[c] as number) - lse);
        expect(Math.abs((dz[r * cols + c] as number) - want), `row ${r} col ${c}`).toBeLessThan(
          4e-7 * Math.abs(want) + 1e-30,
        );
      }
    }
    tf.dispose([z, w, finite, g]);
  });
});
