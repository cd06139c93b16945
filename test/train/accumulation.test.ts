/**
 * Gradient accumulation on the real model: the gradient of one optimizer step does not depend on
 * how its rows are cut into micro-batches, because every micro-batch's loss is divided by the
 * trained tokens of the whole step (counted before any backward pass).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { createLora, type LoraState, lossAndGrads } from '../../src/lora/index.js';
import type { Batch } from '../../src/model/batch.js';
import { forward, type LoadedModel, loadModel } from '../../src/model/index.js';
import { stepGradients, type Trainable } from '../../src/train/train.js';
import { Rng } from '../../src/util/index.js';

const GOLDEN = 'test/fixtures/llama-golden';
const T = 16;

let model: LoadedModel;
let lora: LoraState;
let trainable: Trainable;

/** Four packed rows with 12, 7, 4 and 14 trained tokens (some -100 inside, two documents in row 1). */
function rows(): Batch[] {
  const rng = new Rng(4);
  const masked = [3, 7, 11, 1];
  return masked.map((m, r) => {
    const inputIds = Int32Array.from({ length: T }, () => 3 + rng.int(380));
    const labels = Int32Array.from({ length: T }, (_, t) => (t < m || t === T - 1 ? -100 : inputIds[t + 1]!));
    const segmentIds = Int32Array.from({ length: T }, (_, t) => (r === 1 && t >= 8 ? 1 : 0));
    const positionIds = Int32Array.from({ length: T }, (_, t) => (r === 1 && t >= 8 ? t - 8 : t));
    if (r === 1) labels[7] = -100; // last token of the first document
    return { batchSize: 1, seqLen: T, inputIds, labels, segmentIds, positionIds };
  });
}

function concat(batches: Batch[]): Batch {
  const cat = (k: 'inputIds' | 'labels' | 'segmentIds' | 'positionIds') => {
    const out = new Int32Array(batches.length * T);
    batches.forEach((b, i) => {
      out.set(b[k], i * T);
    });
    return out;
  };
  return {
    batchSize: batches.length,
    seqLen: T,
    inputIds: cat('inputIds'),
    labels: cat('labels'),
    segmentIds: cat('segmentIds'),
    positionIds: cat('positionIds'),
  };
}

beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(GOLDEN);
  lora = createLora(model, { r: 4, alpha: 8, dropout: 0, targets: 'all-linear', useRslora: false, seed: 1 });
  // B starts at zero, which would make every lora_A gradient zero: give B values so both are tested
  const rng = new Rng(9);
  for (const [key, v] of lora.variables) {
    if (key.includes('lora_B')) {
      tf.tidy(() =>
        v.assign(
          tf.tensor(
            Float32Array.from({ length: v.size }, () => (rng.next() - 0.5) * 0.2),
            v.shape,
          ),
        ),
      );
    }
  }
  trainable = {
    variables: lora.variables,
    lossAndGrads: (batch, o) => lossAndGrads(model, lora, batch, o),
    evalLoss: (batch) => forward(model, batch, { lora: lora.toModelLora() }),
    adapterWriter: async () => () => {},
    loadAdapter: () => {},
  };
});

afterAll(() => {
  lora.dispose();
});

describe('gradient accumulation', () => {
  test('4 micro-batches of 1 row give the gradients and loss of 1 micro-batch of 4 (dropout 0)', async () => {
    const four = rows();
    const one = await stepGradients(trainable, [concat(four)], 42, 1);
    const acc = await stepGradients(trainable, four, 42, 1);
    expect(acc.tokens).toBe(12 + 7 + 4 + 14);
    expect(one.tokens).toBe(acc.tokens);
    expect(acc.loss).toBeCloseTo(one.loss, 5);
    // an independent value of the loss: the plain forward pass over the 4 rows
    const f = await forward(model, concat(four), { lora: lora.toModelLora() });
    expect(one.loss).toBeCloseTo(f.lossSum / f.count, 5);
    let maxErr = 0;
    let maxRef = 0;
    for (const [key, g] of one.grads) {
      const a = g.dataSync();
      const b = acc.grads.get(key)!.dataSync();
      for (let i = 0; i < a.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(a[i]! - b[i]!));
        maxRef = Math.max(maxRef, Math.abs(a[i]!));
      }
    }
    expect(maxRef).toBeGreaterThan(1e-3); // the gradients are not trivially zero
    expect(maxErr).toBeLessThan(1e-5);
    tf.dispose([...one.grads.values(), ...acc.grads.values()]);
  });

  test('a mean of micro-batch means would differ: the rows carry different token counts', async () => {
    const four = rows();
    const perRow = [];
    for (const b of four) perRow.push(await forward(model, b, { lora: lora.toModelLora() }));
    const meanOfMeans = perRow.reduce((s, r) => s + r.lossSum / r.count, 0) / 4;
    const tokenWeighted = perRow.reduce((s, r) => s + r.lossSum, 0) / perRow.reduce((s, r) => s + r.count, 0);
    const step = await stepGradients(trainable, four, 42, 1);
    tf.dispose([...step.grads.values()]);
    expect(step.loss).toBeCloseTo(tokenWeighted, 5);
    expect(Math.abs(step.loss - meanOfMeans)).toBeGreaterThan(1e-4);
  });

  test('tensors stay flat across steps', async () => {
    const four = rows();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const s = await stepGradients(trainable, four, 42, i + 1);
      tf.dispose([...s.grads.values()]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
