/**
 * The output head (final RMSNorm + lm_head) against a float64 computation written here, with a
 * vocabulary wider than one block of columns: every path (the loss, the eval statistics over
 * chunks of rows, all logits, the last position's logits) gives the reference's numbers.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { headLossSum, type LossStats, OutputHead } from '../../src/model/index.js';
import { Rng } from '../../src/util/index.js';
import { relMaxErr } from '../helpers/golden.js';
import { randomModel, tinyConfig } from '../lora/tiny-model.js';

const B = 2;
const T = 7;
const V = 5000; // more than one 4096-column block
const model = randomModel(tinyConfig({ vocab_size: V }), 3);
const H = model.spec.hidden_size;
const rng = new Rng(4);
const hidden = Float32Array.from({ length: B * T * H }, () => 2 * rng.next() - 1);
const labels = Int32Array.from({ length: B * T }, (_, i) => (i % 3 === 0 ? -100 : rng.int(V)));

/** Float64 logits [B*T, V]: z = (x / rms(x) * norm) lm_head^T. */
function referenceLogits(): Float64Array {
  const norm = model.norm.toFloat32();
  const w = model.lm_head.toFloat32();
  const z = new Float64Array(B * T * V);
  const y = new Float64Array(H);
  for (let r = 0; r < B * T; r++) {
    let ms = 0;
    for (let k = 0; k < H; k++) ms += hidden[r * H + k]! ** 2;
    const inv = 1 / Math.sqrt(ms / H + model.spec.rms_norm_eps);
    for (let k = 0; k < H; k++) y[k] = hidden[r * H + k]! * inv * norm[k]!;
    for (let j = 0; j < V; j++) {
      let s = 0;
      for (let k = 0; k < H; k++) s += y[k]! * w[j * H + k]!;
      z[r * V + j] = s;
    }
  }
  return z;
}

const ref = referenceLogits();
/** Float64 summed cross-entropy and argmax hits over the labelled rows. */
const refStats = (() => {
  let nll = 0;
  let correct = 0;
  let count = 0;
  labels.forEach((label, r) => {
    if (label === -100) return;
    const row = ref.subarray(r * V, (r + 1) * V);
    let max = -Infinity;
    let arg = 0;
    row.forEach((v, j) => {
      if (v > max) [max, arg] = [v, j];
    });
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    nll += max + Math.log(sum) - row[label]!;
    if (arg === label) correct++;
    count++;
  });
  return { nll, correct, count };
})();

beforeAll(async () => {
  await initBackend('wasm');
});

describe('OutputHead', () => {
  test('all logits and the last position logits match the float64 reference', async () => {
    const head = new OutputHead(model);
    const h = tf.tensor3d(hidden, [B, T, H]);
    const all = head.allLogits(h);
    const z = (await all.data()) as Float32Array;
    expect(relMaxErr(z, ref)).toBeLessThan(1e-5);
    const last = await head.lastLogits(h);
    // the last position of each row (a product over other rows may round differently)
    for (let b = 0; b < B; b++) {
      const at = (b * T + T - 1) * V;
      expect(relMaxErr(last.subarray(b * V, (b + 1) * V), ref.subarray(at, at + V))).toBeLessThan(1e-5);
    }
    tf.dispose([h, all]);
    head.dispose();
  });

  test('the loss (training) and the eval statistics (any chunk of rows) are the reference cross-entropy', async () => {
    const before = tf.memory().numTensors;
    const h = tf.tensor3d(hidden, [B, T, H]);
    const loss = headLossSum(model, h, labels, { chunkSize: 4 });
    expect(loss.count).toBe(refStats.count);
    expect(Math.abs((await loss.lossSum.data())[0]! - refStats.nll) / refStats.nll).toBeLessThan(1e-5);
    loss.lossSum.dispose();
    for (const chunkRows of [1, 3, undefined]) {
      const head = new OutputHead(model);
      const sums: LossStats = { nll: 0, correct: 0, count: 0 };
      await head.addLossStats(h, labels, sums, chunkRows);
      head.dispose();
      expect(sums.count).toBe(refStats.count);
      expect(sums.correct).toBe(refStats.correct);
      expect(Math.abs(sums.nll - refStats.nll) / refStats.nll).toBeLessThan(1e-5);
    }
    h.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
