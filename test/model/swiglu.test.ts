/**
 * SwiGLU's product and its gradients, as mft's fused kernels (wasm with the binding) and as tfjs
 * ops (every other backend), against float64 formulas computed here.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, test } from 'vitest';
import { useNativeKernels } from '../../src/backend/index.js';
import { SWIGLU_KERNEL, swiglu } from '../../src/model/index.js';
import { fusedAndOps } from '../helpers/fused-and-ops.js';
import { lcgValues } from '../helpers/lcg-values.js';
import { HAS_BINDING } from '../helpers/native-binding.js';
import { worstExcess } from '../helpers/worst-excess.js';

/** act = g u s, du = w g s, dg = w u s (1 + g (1 - s)), s = sigmoid(g), for the loss sum(act * w). */
function reference(g: Float32Array, u: Float32Array, w: Float32Array) {
  const n = g.length;
  const [act, dg, du] = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  for (let i = 0; i < n; i++) {
    const [x, y, d] = [g[i] as number, u[i] as number, w[i] as number];
    const s = 1 / (1 + Math.exp(-x));
    act[i] = x * y * s;
    du[i] = d * x * s;
    dg[i] = d * y * s * (1 + x * (1 - s));
  }
  return { act, dg, du };
}

// Odd sizes (vector tails), a layer's [B, T, intermediate], and gates far into both tails.
const SHAPES = [[5], [3, 37], [2, 64, 172], [2, 256, 1376]];

describe('swiglu', () => {
  const expectFormula = (shape: number[], i: number, tol: number) => {
    const n = tf.util.sizeFromShape(shape);
    const g = Float32Array.from(lcgValues(n, 3 * i + 1), (v) => 12 * v);
    g[0] = -90; // exp(-g) overflows: act and the gradients are 0 (times g)
    if (n > 1) g[1] = 90;
    const u = lcgValues(n, 3 * i + 2);
    const w = lcgValues(n, 3 * i + 3);
    const [gt, ut, wt] = [tf.tensor(g, shape), tf.tensor(u, shape), tf.tensor(w, shape)];
    const act = swiglu(gt, ut);
    const [dg, du] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swiglu(a, b), wt)))([gt, ut]);
    const want = reference(g, u, w);
    const got = { act: act.dataSync(), dg: dg!.dataSync(), du: du!.dataSync() };
    for (const key of ['act', 'dg', 'du'] as const) {
      const worst = worstExcess(got[key], want[key], tol);
      expect(worst.excess, `${key}[${worst.at}]`).toBeLessThanOrEqual(0);
    }
    tf.dispose([gt, ut, wt, act, dg!, du!]);
  };

  fusedAndOps(SWIGLU_KERNEL, SHAPES, expectFormula, { fused: 4e-7, ops: 4e-7 });

  test.skipIf(!HAS_BINDING)('the fused kernel checks that gate and up have one shape', () => {
    useNativeKernels();
    const [a, b] = [tf.zeros([2, 3]), tf.zeros([3, 2])];
    expect(() => swiglu(a, b)).toThrow(/'gate' and 'up' passed to 'swiglu' must have one shape/);
    tf.dispose([a, b]);
  });
});
