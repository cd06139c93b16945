/**
 * Softmax on mft's binding (wasm) against float64 softmax and the stock (XNNPACK) kernel: the
 * attention scores' shapes (masked entries at -1e9), the vocabulary-wide rows of the loss, odd sizes.
 */
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
import { worstExcess } from '../helpers/worst-excess.js';

/**
 * Softmax of each row of `cols` values, in float64 from the float32 differences x - max (which
 * every float32 kernel computes first, and whose rounding no later precision recovers).
 */
function reference(x: Float32Array, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const max = Math.max(...row);
    const e = row.map((v) => Math.exp(Math.fround(v - max)));
    const z = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (e[c] as number) / z;
  }
  return out;
}

/** Every `got[j]` within `relative * want[j]` (one expect, naming the worst element). */
function expectWithin(got: Float32Array, want: ArrayLike<number>, relative: number): void {
  const worst = worstExcess(got, want, relative, 0);
  expect(worst.excess, `element ${worst.at}`).toBeLessThanOrEqual(0);
}

// From 4096 elements (below it the stock kernel runs); odd row lengths exercise the 16-lane tails.
const SHAPES = [
  [64, 64],
  [3, 4097],
  [2, 8, 33, 129],
  [4, 8, 128, 128],
  [17, 32000],
];

describe.skipIf(!HAS_BINDING)('Softmax on the binding', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    useNativeKernels();
  });
  afterAll(() => {
    useNativeKernels();
  });

  const inputs = (shape: number[], i: number) => {
    const n = tf.util.sizeFromShape(shape);
    const x = Float32Array.from(lcgValues(n, 40 + i), (v) => 30 * v);
    for (let j = 0; j < n; j += 7) x[j] = -1e9; // masked scores
    return x;
  };
  const run = (x: Float32Array, shape: number[]) => {
    const t = tf.tensor(x, shape);
    const y = tf.softmax(t);
    const out = y.dataSync() as Float32Array;
    tf.dispose([t, y]);
    return out;
  };

  test('named in the status', () => {
    expect(nativeKernelStatus()?.detail).toMatch(/Exp and Softmax from 4096/);
  });

  test.each(SHAPES.map((s, i) => [s, i] as const))('on %j: float64 softmax to 4 ulp', (shape, i) => {
    const x = inputs(shape, i);
    const got = run(x, shape);
    const want = reference(x, shape.at(-1) as number);
    expectWithin(got, want, 4.8e-7);
  });

  // Two expf approximations (XNNPACK's and the binding's), a divide against a reciprocal, and the
  // stock kernel's float sum, which loses about sqrt(cols / 1024) ulp more over long rows.
  test.each(SHAPES.map((s, i) => [s, i] as const))(
    "on %j: the stock kernel to 8 ulp or its sum's",
    (shape, i) => {
      const tolerance = 9.6e-7 * Math.max(1, Math.sqrt((shape.at(-1) as number) / 1024));
      const x = inputs(shape, i);
      const got = run(x, shape);
      useStockKernels();
      const stock = run(x, shape);
      useNativeKernels();
      expectWithin(got, stock, tolerance);
    },
  );
});
