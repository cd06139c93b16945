/**
 * RMSNorm and its gradients, as mft's fused kernels (wasm with the binding) and as tfjs ops (every
 * other backend), against float64 formulas computed here.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect } from 'vitest';
import { RMS_NORM_KERNEL, rmsNorm } from '../../src/model/index.js';
import { fusedAndOps } from '../helpers/fused-and-ops.js';
import { lcgValues } from '../helpers/lcg-values.js';
import { worstExcess } from '../helpers/worst-excess.js';

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

// Odd widths (vector tails), a model's hidden size, rows across threads.
const SHAPES = [
  [3, 37],
  [2, 5, 64],
  [4, 256, 512],
];

describe('rmsNorm', () => {
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
    expect(worstExcess(y.dataSync(), want.y, tol).excess, 'y').toBeLessThanOrEqual(0);
    expect(worstExcess(dx!.dataSync(), want.dx, 2 * tol).excess, 'dx').toBeLessThanOrEqual(0);
    expect(worstExcess(dw!.dataSync(), want.dw, 2e-6 * Math.sqrt(n / cols)).excess, 'dw').toBeLessThanOrEqual(
      0,
    );
    tf.dispose([xt, wt, ut, y, dx!, dw!]);
  };

  fusedAndOps(RMS_NORM_KERNEL, SHAPES, expectFormula, { fused: 5e-7, ops: 2e-6 });
});
