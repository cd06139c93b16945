/**
 * The custom-gradient cross-entropy ops against float64 computations written here:
 *   loss = sum_{label != -100} logsumexp(z) - z[label],   dloss/dz = softmax(z) - onehot(label)
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { crossEntropySum, defaultChunkRows, lmHeadCrossEntropySum } from '../../src/model/index.js';
import { Rng } from '../../src/util/index.js';
import { relMaxErr } from '../helpers/golden.js';

function randn(n: number, scale: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

/** Float64 loss sum and d loss / d logits for logits [N, V]. */
function reference(z: Float32Array, N: number, V: number, labels: Int32Array) {
  let loss = 0;
  const grad = new Float64Array(N * V);
  for (let i = 0; i < N; i++) {
    const label = labels[i] as number;
    if (label === -100) continue;
    let m = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < V; v++) m = Math.max(m, z[i * V + v] as number);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp((z[i * V + v] as number) - m);
    loss += m + Math.log(s) - (z[i * V + label] as number);
    for (let v = 0; v < V; v++)
      grad[i * V + v] = Math.exp((z[i * V + v] as number) - m) / s - (v === label ? 1 : 0);
  }
  return { loss, grad };
}

describe.each(['wasm', 'cpu'] as const)('cross-entropy on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  test('crossEntropySum: value and gradient, -100 ignored', () => {
    const N = 7;
    const V = 11;
    const z = randn(N * V, 4, 1);
    const labels = Int32Array.from([3, -100, 0, 10, -100, 5, 5]);
    const ref = reference(z, N, V, labels);
    const logits = tf.tensor2d(z, [N, V]);
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor2D) => crossEntropySum(x, labels))(logits);
    expect(Math.abs((value.dataSync()[0] as number) - ref.loss) / ref.loss).toBeLessThan(1e-6);
    expect(relMaxErr(grad.dataSync(), ref.grad)).toBeLessThan(1e-6);
    // Rows without loss get exactly zero gradient.
    expect(Array.from(grad.dataSync().slice(V, 2 * V)).every((g) => g === 0)).toBe(true);
    tf.dispose([logits, value, grad]);
  });

  test('overflow: logits near 1e4 give a finite loss and gradient', () => {
    const z = Float32Array.from([10000, 9990, -10000, 9999]);
    const labels = Int32Array.from([1]);
    const x = tf.tensor2d(z, [1, 4]);
    const { value, grad } = tf.valueAndGrad((t: tf.Tensor2D) => crossEntropySum(t, labels))(x);
    const ref = reference(z, 1, 4, labels);
    expect(Math.abs((value.dataSync()[0] as number) - ref.loss)).toBeLessThan(1e-3);
    expect(Array.from(grad.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, value, grad]);
  });

  test('lmHeadCrossEntropySum: value and d/d hidden = (softmax - onehot) W, for any chunk size', () => {
    const N = 9;
    const H = 6;
    const V = 13;
    const h = randn(N * H, 1, 2);
    const W = randn(V * H, 1.5, 3);
    const labels = Int32Array.from([2, 12, -100, 0, 7, -100, -100, 4, 9]);
    // reference: z = h W^T in float64, then the CE gradient pulled back through W
    const z = new Float32Array(N * V);
    const z64 = new Float64Array(N * V);
    for (let i = 0; i < N; i++) {
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let k = 0; k < H; k++) s += (h[i * H + k] as number) * (W[v * H + k] as number);
        z64[i * V + v] = s;
      }
    }
    z.set(z64);
    const ref = reference(Float32Array.from(z64), N, V, labels);
    const dh = new Float64Array(N * H);
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < H; k++) {
        let s = 0;
        for (let v = 0; v < V; v++) s += (ref.grad[i * V + v] as number) * (W[v * H + k] as number);
        dh[i * H + k] = s;
      }
    }
    const hidden = tf.tensor2d(h, [N, H]);
    const weight = tf.tensor2d(W, [V, H]);
    for (const chunk of [1, 2, 5, undefined]) {
      const before = tf.memory().numTensors;
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor2D) =>
        lmHeadCrossEntropySum(x, weight, labels, chunk),
      )(hidden, tf.scalar(0.5));
      expect(Math.abs((value.dataSync()[0] as number) - ref.loss) / ref.loss).toBeLessThan(1e-5);
      // dy = 0.5 scales the gradient (the trainer's loss scale)
      expect(
        relMaxErr(
          grad.dataSync(),
          dh.map((g) => 0.5 * g),
        ),
      ).toBeLessThan(1e-5);
      // rows that carry no loss have no gradient
      expect(Array.from(grad.dataSync().slice(2 * H, 3 * H))).toEqual([0, 0, 0, 0, 0, 0]);
      tf.dispose([value, grad]);
      expect(tf.memory().numTensors).toBeLessThanOrEqual(before + 1); // + the dy scalar
    }
    tf.dispose([hidden, weight]);
  });

  test('lmHeadCrossEntropySum: wide vocabulary and hidden (computed in column blocks) match the plain head', () => {
    const [N, H, V] = [6, 200, 5000];
    const labels = Int32Array.from([4999, 3, -100, 4096, 4095, 17]);
    const hidden = tf.tensor2d(randn(N * H, 1, 6), [N, H]);
    const weight = tf.tensor2d(randn(V * H, 0.2, 7), [V, H]);
    const got = tf.valueAndGrad((x: tf.Tensor2D) => lmHeadCrossEntropySum(x, weight, labels, 4))(hidden);
    const want = tf.valueAndGrad((x: tf.Tensor2D) =>
      crossEntropySum(tf.matMul(x, weight, false, true) as tf.Tensor2D, labels),
    )(hidden);
    const untaped = lmHeadCrossEntropySum(hidden, weight, labels);
    const [g, w, u] = [got.value, want.value, untaped].map((t) => t.dataSync()[0] as number) as [
      number,
      number,
      number,
    ];
    expect(Math.abs(g - w) / w).toBeLessThan(1e-5);
    expect(Math.abs(u - w) / w).toBeLessThan(1e-5);
    expect(relMaxErr(got.grad.dataSync(), want.grad.dataSync())).toBeLessThan(1e-5);
    tf.dispose([hidden, weight, got.value, got.grad, want.value, want.grad, untaped]);
  });

  test('every label -100: zero loss and zero gradient', () => {
    const hidden = tf.tensor2d(randn(8, 1, 4), [2, 4]);
    const weight = tf.tensor2d(randn(12, 1, 5), [3, 4]);
    const labels = Int32Array.from([-100, -100]);
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor2D) => lmHeadCrossEntropySum(x, weight, labels))(
      hidden,
    );
    expect(value.dataSync()[0]).toBe(0);
    expect(Array.from(grad.dataSync()).every((g) => g === 0)).toBe(true);
    tf.dispose([hidden, weight, value, grad]);
  });

  test('labels outside the vocabulary are refused', () => {
    const x = tf.zeros([2, 5]) as tf.Tensor2D;
    expect(() => crossEntropySum(x, Int32Array.from([1, 5]))).toThrow(
      /'labels' passed to 'crossEntropySum' has 5/,
    );
    expect(() => crossEntropySum(x, Int32Array.from([1]))).toThrow(/must have 2 entries/);
    x.dispose();
  });
});

test('default chunk keeps a chunk of logits near 2^24 floats', () => {
  expect(defaultChunkRows(32000)).toBe(524);
  expect(defaultChunkRows(128256) * 128256).toBeLessThanOrEqual(2 ** 24);
  expect(defaultChunkRows(2 ** 30)).toBe(1);
});
