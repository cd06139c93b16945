import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { lossAndGrads } from '../../src/lora/layerwise-grads.js';
import { type CreateLoraOptions, createLora, type LoraState } from '../../src/lora/lora-state.js';
import type { Batch } from '../../src/model/batch.js';
import {
  createAttentionContext,
  decoderLayer,
  embedTokens,
  forward,
  headLossSum,
  type LoadedModel,
  layerTensors,
} from '../../src/model/index.js';
import { mixSeed, Rng } from '../../src/util/index.js';
import { relMaxErr } from '../helpers/golden.js';
import { randomBatch, randomModel, tinyConfig } from './tiny-model.js';

/**
 * The reference: one tape over the whole forward (embed, every layer, head) and one tf.grads,
 * d(lossScale * lossSum) / d(every LoRA variable).
 */
function oneTapeGrads(
  model: LoadedModel,
  lora: LoraState,
  batch: Batch,
  lossScale: number,
  stepSeed?: number,
): { lossSum: number; grads: Map<string, Float32Array> } {
  const ml = lora.toModelLora(stepSeed === undefined ? undefined : { stepSeed });
  const keys = [...lora.variables.keys()];
  const ctx = createAttentionContext(model.spec, batch);
  const out = tf.tidy(() => {
    const f = () => {
      let x = embedTokens(model, batch);
      for (let i = 0; i < model.layers.length; i++)
        x = decoderLayer(model.spec, i, x, layerTensors(model, i), ctx, ml[i]);
      return tf.mul(headLossSum(model, x, batch.labels).lossSum, lossScale) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(f)(keys.map((k) => lora.variables.get(k)!));
    return [value, ...grads];
  });
  ctx.dispose();
  const lossSum = out[0]!.dataSync()[0]! / lossScale;
  const grads = new Map(keys.map((k, j) => [k, Float32Array.from(out[j + 1]!.dataSync())]));
  tf.dispose(out);
  return { lossSum, grads };
}

function toArrays(grads: Map<string, tf.Tensor>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, g] of grads) {
    out.set(k, Float32Array.from(g.dataSync()));
    g.dispose();
  }
  return out;
}

/**
 * LoRA on every linear layer of `m` (no dropout, no rsLoRA unless `opts` says so), with B and A
 * drawn from `randomSeed` so that every gradient is non-zero.
 */
function randomLora(
  m: LoadedModel,
  opts: Pick<CreateLoraOptions, 'r' | 'alpha'> & Partial<CreateLoraOptions>,
  randomSeed: number,
): LoraState {
  const lora = createLora(m, { dropout: 0, targets: 'all-linear', useRslora: false, seed: 1, ...opts });
  const rng = new Rng(randomSeed);
  for (const v of lora.variables.values()) {
    const data = new Float32Array(v.size).map(() => (2 * rng.next() - 1) * 0.3);
    v.assign(tf.tensor(data, v.shape));
  }
  return lora;
}

/** Every gradient within 1e-5 (relative to its largest entry) of the reference. */
function expectGradsMatch(got: Map<string, Float32Array>, ref: Map<string, Float32Array>): void {
  for (const [k, g] of ref) expect(relMaxErr(got.get(k)!, g), k).toBeLessThan(1e-5);
}

const model = randomModel(tinyConfig(), 11);
const batch = randomBatch(48, 2, 20, 12);
const LOSS_SCALE = 0.37;

beforeAll(async () => {
  await initBackend('wasm');
});

describe('lossAndGrads', () => {
  test('layer-wise gradients equal a one-tape gradient over the whole model', async () => {
    const lora = randomLora(model, { r: 4, alpha: 8 }, 5);
    const ref = oneTapeGrads(model, lora, batch, LOSS_SCALE);
    const r = await lossAndGrads(model, lora, batch, { lossScale: LOSS_SCALE });
    const grads = toArrays(r.grads);
    expect([...grads.keys()]).toEqual([...lora.variables.keys()]);
    expect(r.lossSum).toBeCloseTo(ref.lossSum, 3);
    for (const [k, g] of ref.grads) {
      expect(Math.max(...g.map(Math.abs)), k).toBeGreaterThan(0);
      expect(relMaxErr(grads.get(k)!, g), k).toBeLessThan(1e-5);
    }
    lora.dispose();
  });

  test.each([
    [
      'Qwen2 (q/k/v biases, tied embeddings)',
      { architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: true },
    ],
    ['Mistral (sliding window 5)', { architectures: ['MistralForCausalLM'], sliding_window: 5 }],
  ])('%s: layer-wise gradients equal a one-tape gradient', async (_name, overrides) => {
    const m = randomModel(tinyConfig({ num_hidden_layers: 2, ...overrides }), 21);
    const lora = randomLora(m, { r: 2, alpha: 4, dropout: 0.1 }, 9);
    const ref = oneTapeGrads(m, lora, batch, LOSS_SCALE, 77);
    const grads = toArrays(
      (await lossAndGrads(m, lora, batch, { lossScale: LOSS_SCALE, dropoutSeed: 77 })).grads,
    );
    expectGradsMatch(grads, ref.grads);
    lora.dispose();
  });

  test('checkpointing: false (one tape) gives the same gradients', async () => {
    const lora = randomLora(
      model,
      { r: 2, alpha: 3, targets: ['q_proj', 'o_proj', 'down_proj'], useRslora: true, seed: 2 },
      6,
    );
    const ref = oneTapeGrads(model, lora, batch, LOSS_SCALE);
    const a = await lossAndGrads(model, lora, batch, { lossScale: LOSS_SCALE, checkpointing: false });
    const b = await lossAndGrads(model, lora, batch, { lossScale: LOSS_SCALE, checkpointing: true });
    expect(a.lossSum).toBeCloseTo(b.lossSum, 4);
    expect(a.count).toBe(b.count);
    const ga = toArrays(a.grads);
    const gb = toArrays(b.grads);
    expectGradsMatch(ga, ref.grads);
    expectGradsMatch(gb, ref.grads);
    lora.dispose();
  });

  test('with lora_dropout > 0 the recompute draws the forward masks: equal to one tape with the same seeds', async () => {
    const lora = randomLora(model, { r: 4, alpha: 8, dropout: 0.3 }, 7);
    const seed = mixSeed(42, 3, 1); // run seed, step, micro-batch
    const ref = oneTapeGrads(model, lora, batch, LOSS_SCALE, seed);
    const noDropout = oneTapeGrads(model, lora, batch, LOSS_SCALE);
    const r = await lossAndGrads(model, lora, batch, { lossScale: LOSS_SCALE, dropoutSeed: seed });
    const grads = toArrays(r.grads);
    expect(r.lossSum).toBeCloseTo(ref.lossSum, 3);
    for (const [k, g] of ref.grads) {
      expect(relMaxErr(grads.get(k)!, g), k).toBeLessThan(1e-5);
      // dropout really acted: the gradient is far from the dropout-free one
      expect(relMaxErr(noDropout.grads.get(k)!, g), k).toBeGreaterThan(1e-2);
    }
    // another micro-batch seed, other masks
    const other = toArrays(
      (await lossAndGrads(model, lora, batch, { lossScale: LOSS_SCALE, dropoutSeed: seed + 1 })).grads,
    );
    const k0 = [...grads.keys()][0]!;
    expect(relMaxErr(other.get(k0)!, grads.get(k0)!)).toBeGreaterThan(1e-2);
    // same seed, same numbers (a pure function of its inputs)
    const again = toArrays(
      (await lossAndGrads(model, lora, batch, { lossScale: LOSS_SCALE, dropoutSeed: seed })).grads,
    );
    for (const [k, g] of grads) expect(again.get(k)).toEqual(g);
    lora.dispose();
  });

  test('loss and count match await forward(); gradients scale linearly with lossScale', async () => {
    const lora = randomLora(model, { r: 4, alpha: 8, dropout: 0.2, seed: 9 }, 8);
    const fwd = await forward(model, batch, { lora: lora.toModelLora() });
    const r1 = await lossAndGrads(model, lora, batch, { lossScale: 1 });
    const r2 = await lossAndGrads(model, lora, batch, { lossScale: 0.25 });
    let labelled = 0;
    for (const l of batch.labels) if (l !== -100) labelled++;
    expect(r1.count).toBe(labelled);
    expect(r1.count).toBe(fwd.count);
    expect(r1.lossSum).toBeCloseTo(fwd.lossSum, 3);
    expect(r2.lossSum).toBeCloseTo(fwd.lossSum, 3);
    const g1 = toArrays(r1.grads);
    const g2 = toArrays(r2.grads);
    for (const [k, g] of g1)
      expect(
        relMaxErr(
          g2.get(k)!,
          g.map((v) => v * 0.25),
        ),
        k,
      ).toBeLessThan(1e-5);
    lora.dispose();
  });

  test('step 0 (B = 0) is the base model: same logits, zero gradient for A, non-zero for B', async () => {
    const lora = createLora(model, {
      r: 8,
      alpha: 16,
      dropout: 0.1,
      targets: 'all-linear',
      useRslora: false,
      seed: 4,
    });
    const baseOut = await forward(model, batch, { returnLogits: true });
    const loraOut = await forward(model, batch, { returnLogits: true, lora: lora.toModelLora() });
    expect(loraOut.logits).toEqual(baseOut.logits);
    const r = await lossAndGrads(model, lora, batch, { lossScale: 1, dropoutSeed: 1 });
    expect(r.lossSum).toBeCloseTo(baseOut.lossSum, 3);
    for (const [k, g] of toArrays(r.grads)) {
      const maxAbs = Math.max(...g.map(Math.abs));
      if (k.includes('lora_A')) expect(maxAbs, k).toBe(0);
      else expect(maxAbs, k).toBeGreaterThan(0);
    }
    lora.dispose();
  });

  test('tf.memory().numTensors stays flat across repeated calls, both paths', async () => {
    const lora = randomLora(model, { r: 4, alpha: 8, dropout: 0.1 }, 3);
    const run = async (checkpointing: boolean, step: number) => {
      const r = await lossAndGrads(model, lora, batch, { lossScale: 0.5, dropoutSeed: step, checkpointing });
      tf.dispose([...r.grads.values()]);
    };
    await run(true, 0);
    await run(false, 0);
    const before = tf.memory().numTensors;
    for (let step = 1; step <= 4; step++) {
      await run(true, step);
      await run(false, step);
    }
    expect(tf.memory().numTensors).toBe(before);
    lora.dispose();
  });
});
