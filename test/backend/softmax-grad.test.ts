/**
 * Softmax's gradient: the fused kernel (wasm, on mft's binding) and tfjs's four-kernel composite
 * (every other backend, and wasm without the binding) against the float64 formula computed here.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect } from 'vitest';
import { SOFTMAX_GRAD } from '../../src/backend/softmax-grad.js';
import { fusedAndOps } from '../helpers/fused-and-ops.js';
import { lcgValues } from '../helpers/lcg-values.js';
import { worstExcess } from '../helpers/worst-excess.js';

/** d/dx of sum(softmax(x) * w) over the last axis, in float64: y * (w - sum(w * y)). */
function reference(x: Float32Array, w: Float32Array, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const max = Math.max(...row);
    const e = row.map((v) => Math.exp(v - max));
    const z = e.reduce((a, b) => a + b, 0);
    const y = e.map((v) => v / z);
    let s = 0;
    for (let c = 0; c < cols; c++) s += (w[r * cols + c] as number) * (y[c] as number);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (y[c] as number) * ((w[r * cols + c] as number) - s);
  }
  return out;
}

const SHAPES = [[7], [3, 1], [5, 33], [2, 3, 4, 129], [4, 8, 64, 64]]; // the last: cut across threads

describe('softmax gradient', () => {
  /** Softmax's gradient of sum(softmax(x) * w) on the active kernels against the float64 formula. */
  const expectFormula = (shape: number[], i: number, tol: number) => {
    const n = tf.util.sizeFromShape(shape);
    const x = Float32Array.from(lcgValues(n, 2 * i + 1), (v) => 4 * v);
    const w = lcgValues(n, 2 * i + 2);
    const wt = tf.tensor(w, shape);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.softmax(t), wt)))(tf.tensor(x, shape));
    const got = g.dataSync() as Float32Array;
    tf.dispose([wt, g]);
    const worst = worstExcess(got, reference(x, w, shape.at(-1) as number), tol);
    expect(worst.excess, `element ${worst.at}`).toBeLessThanOrEqual(0);
  };

  // the composite is tfjs's four kernels
  fusedAndOps(SOFTMAX_GRAD, SHAPES, expectFormula, { fused: 1e-6, ops: 1e-6 });
});
