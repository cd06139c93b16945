/**
 * RMSNorm and its gradients, as mft's fused kernels (wasm with the binding) and as tfjs ops (every
 * other backend), against float64 formulas computed here.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend, useNativeKernels, useStockKernels } from '../../src/backend/index.js';
import { RMS_NORM_KERNEL, rmsNorm } from '../../src/model/index.js';
import { lcgValues } from '../helpers/lcg-values.js';
import { HAS_BINDING } from '../helpers/native-binding.js';

const EPS = 1e-5;

/** y, dx and dw of sum(rmsNorm(x, w) * u) in float64, rows of `cols`. */
function reference(x: Float32Array, w: Float32Array, u: Float32Array, cols: number) {
  const [y, dx] = [new Float64Array(x.length), new Float64Array(x.length)];
  const dw = new Float64Array(cols);
  for (let r = 0; r < x.length / cols; r++) {
    const at = r * cols;
    let ss = 0;
    let wux = 0;
    for (let c = 0; c < cols; c++) {
      ss += x[at + c]! ** 2;
      wux += w[c]! * u[at + c]! * x[at + c]!;
    }
    const inv = 1 / Math.sqrt(ss / cols + EPS);
    for (let c = 0; c < cols; c++) {
      y[at + c] = x[at + c]! * inv * w[c]!;
      dx[at + c] = inv * w[c]! * u[at + c]! - (x[at + c]! * inv ** 3 * wux) / cols;
      dw[c]! += u[at + c]! * x[at + c]! * inv;
    }
  }
  return { y, dx, dw };
}

/** The largest error over the bound |got - want| <= tol * max(1, |want|) (<= 0 when all are within). */
function excess(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < want.length; i++) {
    const e =
      Math.abs((got[i] as number) - (want[i] as number)) - tol * Math.max(1, Math.abs(want[i] as number));
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

// Odd widths (vector tails), a model's hidden size, rows across threads.
const SHAPES = [
  [3, 37],
  [2, 5, 64],
  [4, 256, 512],
];

describe('rmsNorm', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(() => {
    useNativeKernels();
  });

  /** `tol`: relative bound on y and dx (the tfjs ops' float32 mean is the less exact). */
  const expectFormula = (shape: number[], i: number, tol: number) => {
    const n = tf.util.sizeFromShape(shape);
    const cols = shape.at(-1) as number;
    const x = Float32Array.from(lcgValues(n, 5 * i + 1), (v) => 3 * v);
    const w = Float32Array.from(lcgValues(cols, 5 * i + 2), (v) => 1 + 0.5 * v);
    const u = lcgValues(n, 5 * i + 3);
    const [xt, wt, ut] = [tf.tensor(x, shape), tf.tensor1d(w), tf.tensor(u, shape)];
    const y = rmsNorm(xt, wt, EPS);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(rmsNorm(a, b as tf.Tensor1D, EPS), ut)),
    )([xt, wt]);
    const want = reference(x, w, u, cols);
    expect(excess(y.dataSync(), want.y, tol), 'y').toBeLessThanOrEqual(0);
    expect(excess(dx!.dataSync(), want.dx, 2 * tol), 'dx').toBeLessThanOrEqual(0);
    expect(excess(dw!.dataSync(), want.dw, 2e-6 * Math.sqrt(n / cols)), 'dw').toBeLessThanOrEqual(0);
    tf.dispose([xt, wt, ut, y, dx!, dw!]);
  };

  test.skipIf(!HAS_BINDING).each(SHAPES.map((s, i) => [s, i] as const))(
    'fused kernels on %j = float64 formulas',
    (shape, i) => {
      useNativeKernels();
      expect(tf.getKernel(RMS_NORM_KERNEL, 'wasm')).toBeDefined();
      expectFormula(shape, i, 5e-7);
    },
  );

  test.each(SHAPES.map((s, i) => [s, i] as const))('tfjs ops on %j = float64 formulas', (shape, i) => {
    useStockKernels();
    expect(tf.getKernel(RMS_NORM_KERNEL, 'wasm')).toBeUndefined();
    expectFormula(shape, i, 2e-6);
  });
});
