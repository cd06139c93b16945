/**
 * Held-out loss, perplexity and token accuracy against the llama-golden fixture, whose logits and
 * losses were computed outside this project (llama2.c's model.py in float64; see
 * test/fixtures/llama-golden/README.md). The expected token accuracy and per-document losses are
 * computed here, in float64, from the fixture's reference logits.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { type EvalSample, evaluateLoss } from '../../src/eval/index.js';
import { type LoraState, loraFromAdapter } from '../../src/lora/index.js';
import { loadAdapter } from '../../src/lora/peft-adapter.js';
import { type LoadedModel, loadModel } from '../../src/model/index.js';
import { SafetensorsFile } from '../../src/weights/index.js';

const DIR = new URL('../fixtures/llama-golden/', import.meta.url).pathname;
const golden = SafetensorsFile.open(`${DIR}golden.safetensors`);
const ref = (name: string) => golden.read(name).data as Float32Array | Int32Array;
const goldenJson = (await import('../fixtures/llama-golden/golden.json', { with: { type: 'json' } })).default;
const V = 384;

/** Rows of the fixture's `[2, 24]` batch as samples (every token after the first carries loss). */
function goldenRows(): EvalSample[] {
  const ids = ref('input_ids') as Int32Array;
  return [0, 1].map((b) => {
    const row = ids.slice(b * 24, (b + 1) * 24);
    return { ids: row, labels: row };
  });
}

/** The three documents packed in `packed_input_ids` (7, 10 and 5 tokens), each as a sample. */
function packedDocs(): { samples: EvalSample[]; starts: number[] } {
  const ids = ref('packed_input_ids') as Int32Array;
  const starts: number[] = [];
  let at = 0;
  const samples = (goldenJson.packed_documents as number[]).map((len) => {
    starts.push(at);
    const doc = ids.slice(at, at + len);
    at += len;
    return { ids: doc, labels: doc };
  });
  return { samples, starts };
}

/** Float64 mean cross-entropy and argmax accuracy of reference logits `[n, V]` at (row, target) pairs. */
function reference(logits: Float32Array, pairs: [number, number][]): { loss: number; accuracy: number } {
  let nll = 0;
  let correct = 0;
  for (const [row, target] of pairs) {
    const z = Array.from(logits.subarray(row * V, (row + 1) * V));
    const max = Math.max(...z);
    const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    nll += lse - z[target]!;
    if (z.indexOf(max) === target) correct += 1;
  }
  return { loss: nll / pairs.length, accuracy: correct / pairs.length };
}

/** (row in [2*24], target) for every prediction of the golden batch. */
function goldenPairs(): [number, number][] {
  const ids = ref('input_ids') as Int32Array;
  const pairs: [number, number][] = [];
  for (let b = 0; b < 2; b++) for (let t = 0; t < 23; t++) pairs.push([b * 24 + t, ids[b * 24 + t + 1]!]);
  return pairs;
}

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`evaluateLoss on ${backend}`, () => {
    let model: LoadedModel;
    let lora: LoraState;
    beforeAll(async () => {
      await initBackend(backend);
      model = await loadModel(DIR);
      lora = loraFromAdapter(model, loadAdapter(`${DIR}adapter`));
    });
    afterAll(() => lora.dispose());

    test('gives the golden loss (mean over all 2*23 predictions) and the reference token accuracy', async () => {
      const m = await evaluateLoss(model, goldenRows());
      const r = reference(ref('logits') as Float32Array, goldenPairs());
      expect(Math.abs(m.loss - goldenJson.loss)).toBeLessThan(1e-4);
      expect(Math.abs(m.loss - r.loss)).toBeLessThan(1e-4);
      expect(m.perplexity).toBeCloseTo(Math.exp(goldenJson.loss), 3);
      expect(m.token_accuracy).toBe(r.accuracy);
      expect(m.tokens).toBe(46);
      expect(m.input_tokens).toBe(48);
      expect(m.samples).toBe(2);
    });

    test('with the adapter gives the golden lora_loss', async () => {
      const m = await evaluateLoss(model, goldenRows(), { lora: lora.toModelLora() });
      const r = reference(ref('lora_logits') as Float32Array, goldenPairs());
      expect(Math.abs(m.loss - goldenJson.lora_loss)).toBeLessThan(1e-4);
      expect(m.token_accuracy).toBe(r.accuracy);
    });

    test('documents of different lengths: token-weighted mean of the reference, batched, packed or alone', async () => {
      const { samples, starts } = packedDocs();
      const logits = ref('packed_logits') as Float32Array;
      const ids = ref('packed_input_ids') as Int32Array;
      const pairs: [number, number][] = [];
      samples.forEach((s, d) => {
        for (let t = 0; t < s.ids.length - 1; t++) pairs.push([starts[d]! + t, ids[starts[d]! + t + 1]!]);
      });
      const r = reference(logits, pairs);
      const batched = await evaluateLoss(model, samples);
      const alone = await evaluateLoss(model, samples, { tokenBudget: 1 });
      const packed = await evaluateLoss(model, samples, { packLength: 22 });
      expect(batched.batches).toBe(1);
      expect(alone.batches).toBe(3);
      expect(packed.batches).toBe(1);
      for (const m of [batched, alone, packed]) {
        expect(m.tokens).toBe(6 + 9 + 4);
        expect(Math.abs(m.loss - r.loss)).toBeLessThan(1e-4);
        expect(m.token_accuracy).toBe(r.accuracy);
      }
      expect(Math.abs(alone.loss - batched.loss)).toBeLessThan(1e-6);
      expect(Math.abs(packed.loss - batched.loss)).toBeLessThan(1e-6);
    });

    test('labels of -100 carry no loss; the head chunking does not change the result', async () => {
      const [row] = goldenRows();
      const labels = row!.ids.slice();
      labels.fill(-100, 0, 12); // targets of predictions 0..10 masked
      const masked = await evaluateLoss(model, [{ ids: row!.ids, labels }], { chunkRows: 5 });
      const ids = ref('input_ids') as Int32Array;
      const pairs: [number, number][] = [];
      for (let t = 11; t < 23; t++) pairs.push([t, ids[t + 1]!]);
      const r = reference(ref('logits') as Float32Array, pairs);
      expect(masked.tokens).toBe(12);
      expect(Math.abs(masked.loss - r.loss)).toBeLessThan(1e-4);
      expect(masked.token_accuracy).toBe(r.accuracy);
    });

    test('leaves no tensors behind', async () => {
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++)
        await evaluateLoss(model, goldenRows(), { lora: lora.toModelLora(), tokenBudget: 24 });
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

describe('token accuracy on a real model', () => {
  const STORIES = new URL('../../checkpoints/base/tinystories-260k/', import.meta.url).pathname;
  const greedy = readFileSync(
    new URL('../fixtures/stories260K/greedy_t0_n256_noprompt.ids.txt', import.meta.url),
    'utf8',
  )
    .trim()
    .split(/\s+/)
    .map(Number);

  test("is 1 on llama2.c's greedy story (each token is the argmax after the ones before it)", async () => {
    await initBackend('wasm');
    const model = await loadModel(STORIES);
    const ids = Int32Array.from([1, ...greedy.slice(0, 96)]); // BOS, then run.c's greedy ids
    const m = await evaluateLoss(model, [{ ids, labels: ids }]);
    expect(m.tokens).toBe(96);
    expect(m.token_accuracy).toBe(1);
    // A different last token changes only the last target: 95 of 96 predictions still right.
    const changed = ids.slice();
    changed[96] = (changed[96]! + 1) % 512;
    const c = await evaluateLoss(model, [{ ids: changed, labels: changed }]);
    expect(c.token_accuracy).toBe(95 / 96);
    expect(c.loss).toBeGreaterThan(m.loss);
  });
});
