/**
 * Generation with the KV cache: greedy ids equal a float64 greedy decode that recomputes the whole
 * sequence each step (reference-decoder.ts), also past a sliding window; tensors stay flat over many
 * tokens; EOS (config.json, generation_config.json) stops; seeded top-p sampling; and stories260K's
 * greedy output from llama2.c's run.c.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { argmax, generate, loadModel, sampleToken } from '../../src/model/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { Rng } from '../../src/util/index.js';
import { removeTempDirs } from '../helpers/tmp-dir.js';
import { referenceLogits } from './reference-decoder.js';
import { type TinyModel, type TinyOptions, writeTinyModel } from './tiny-model.js';

afterAll(removeTempDirs);
beforeAll(async () => {
  await initBackend('wasm');
});

/** A tiny model written to a temporary folder (removed after the file's tests). */
const tiny = (opts: TinyOptions): TinyModel => writeTinyModel(opts);

/**
 * Greedy decoding with the float64 reference, recomputing the full sequence every step; `penalty`
 * is transformers' RepetitionPenaltyLogitsProcessor (score / p if score > 0 else score * p).
 */
function referenceGreedy(m: TinyModel, prompt: number[], n: number, penalty = 1): number[] {
  const ids = [...prompt];
  const V = m.ref.vocab_size;
  for (let k = 0; k < n; k++) {
    const logits = Array.from(
      referenceLogits(m.ref, m.weights, ids).subarray((ids.length - 1) * V, ids.length * V),
    );
    for (const id of new Set(ids))
      logits[id] = logits[id]! > 0 ? logits[id]! / penalty : logits[id]! * penalty;
    ids.push(argmax(logits));
  }
  return ids.slice(prompt.length);
}

const greedy = { temperature: 0, topP: 1, seed: 0 };

describe('generate with a KV cache', () => {
  test('greedy ids equal a full recomputation at every step (Llama, GQA, biases)', async () => {
    const m = tiny({ attentionBias: true, scale: 2, extra: { eos_token_id: null } });
    const model = await loadModel(m.dir);
    const ids = await generate(model, null, [3, 17, 5], { ...greedy, maxNewTokens: 12 });
    expect(ids).toEqual(referenceGreedy(m, [3, 17, 5], 12));
  });

  test('repetition penalty: greedy ids equal the reference with the transformers processor', async () => {
    const m = tiny({ scale: 2, extra: { eos_token_id: null } });
    const model = await loadModel(m.dir);
    const plain = await generate(model, null, [3, 17, 5], { ...greedy, maxNewTokens: 16 });
    const penalised = await generate(model, null, [3, 17, 5], {
      ...greedy,
      maxNewTokens: 16,
      repetitionPenalty: 1.8,
    });
    expect(penalised).toEqual(referenceGreedy(m, [3, 17, 5], 16, 1.8));
    expect(penalised).not.toEqual(plain); // the penalty changes this model's choices
  });

  test('stopIds end generation like EOS; onToken returning true stops after that token', async () => {
    const m = tiny({ scale: 2, extra: { eos_token_id: null } });
    const model = await loadModel(m.dir);
    const want = referenceGreedy(m, [3, 17, 5], 8);
    const stopAt = want[4] as number;
    const stopped = await generate(model, null, [3, 17, 5], {
      ...greedy,
      maxNewTokens: 8,
      stopIds: [stopAt],
    });
    expect(stopped).toEqual(want.slice(0, want.indexOf(stopAt)));
    const seen: number[] = [];
    const early = await generate(model, null, [3, 17, 5], {
      ...greedy,
      maxNewTokens: 8,
      onToken: (id) => seen.push(id) === 3,
    });
    expect(early).toEqual(want.slice(0, 3));
  });

  test('sliding window and cache together: generating far past the window', async () => {
    const W = 3;
    const m = tiny({
      architecture: 'Qwen2ForCausalLM',
      extra: { use_sliding_window: true, sliding_window: W, max_window_layers: 1, eos_token_id: null },
      windows: [null, W],
      scale: 2,
    });
    const model = await loadModel(m.dir);
    expect(model.spec.sliding_window).toEqual([null, W]);
    const ids = await generate(model, null, [4, 9, 22, 7, 13], { ...greedy, maxNewTokens: 14 });
    expect(ids).toHaveLength(14);
    expect(ids).toEqual(referenceGreedy(m, [4, 9, 22, 7, 13], 14));
  });

  test('tensor count stays flat across many generated tokens and returns to its start', async () => {
    const m = tiny({ architecture: 'MistralForCausalLM', extra: { sliding_window: 4, eos_token_id: null } });
    const model = await loadModel(m.dir);
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    const ids = await generate(model, null, [1], {
      ...greedy,
      maxNewTokens: 60,
      onToken: () => counts.push(tf.memory().numTensors),
    });
    expect(ids).toHaveLength(60);
    expect(new Set(counts.slice(5)).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    // Same with the weights widened per token instead of resident.
    const counts2: number[] = [];
    await generate(model, null, [1], {
      ...greedy,
      maxNewTokens: 20,
      residentBytes: 0,
      onToken: () => counts2.push(tf.memory().numTensors),
    });
    expect(new Set(counts2.slice(1)).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('stops at EOS (config.json eos_token_id), which is not returned', async () => {
    const m = tiny({ scale: 2, extra: { eos_token_id: null } });
    const free = await generate(await loadModel(m.dir), null, [5, 6], { ...greedy, maxNewTokens: 10 });
    const stopAt = free.findIndex((id, k) => k >= 2 && !free.slice(0, k).includes(id));
    expect(stopAt).toBeGreaterThanOrEqual(2);
    const config = JSON.parse(readFileSync(join(m.dir, 'config.json'), 'utf8'));
    writeFileSync(
      join(m.dir, 'config.json'),
      JSON.stringify({ ...config, eos_token_id: [999, free[stopAt]] }),
    );
    const stopped = await generate(await loadModel(m.dir), null, [5, 6], { ...greedy, maxNewTokens: 10 });
    expect(stopped).toEqual(free.slice(0, stopAt));
  });

  test('also stops at an eos_token_id of generation_config.json (chat models list end-of-turn there)', async () => {
    const m = tiny({ scale: 2, extra: { eos_token_id: null } });
    const free = await generate(await loadModel(m.dir), null, [5, 6], { ...greedy, maxNewTokens: 10 });
    const stopAt = free.findIndex((id, k) => k >= 2 && !free.slice(0, k).includes(id));
    expect(stopAt).toBeGreaterThanOrEqual(2);
    writeFileSync(
      join(m.dir, 'generation_config.json'),
      JSON.stringify({ eos_token_id: [998, free[stopAt]] }),
    );
    const stopped = await generate(await loadModel(m.dir), null, [5, 6], { ...greedy, maxNewTokens: 10 });
    expect(stopped).toEqual(free.slice(0, stopAt));
  });

  test('a broken generation_config.json is an error naming the file and the key', async () => {
    const m = tiny({ scale: 2 });
    const file = join(m.dir, 'generation_config.json');
    writeFileSync(file, JSON.stringify({ eos_token_id: 'two' }));
    await expect(loadModel(m.dir)).rejects.toThrow(
      `${file}: eos_token_id: expected a token id or a list of ids`,
    );
    writeFileSync(file, '{');
    await expect(loadModel(m.dir)).rejects.toThrow(`${file}: not valid JSON`);
  });

  test('no prompt starts from BOS', async () => {
    const m = tiny({ scale: 2, extra: { bos_token_id: 7, eos_token_id: null } });
    const model = await loadModel(m.dir);
    expect(await generate(model, null, [], { ...greedy, maxNewTokens: 5 })).toEqual(
      await generate(model, null, [7], { ...greedy, maxNewTokens: 5 }),
    );
  });

  test('sampling is replayed by its seed; top_p near 0 is greedy', async () => {
    const m = tiny({ scale: 0.5, extra: { eos_token_id: null } });
    const model = await loadModel(m.dir);
    const sample = (seed: number, topP = 0.9) =>
      generate(model, null, [1, 2], { temperature: 1, topP, seed, maxNewTokens: 15 });
    expect(await sample(1)).toEqual(await sample(1));
    expect(await sample(1)).not.toEqual(await sample(2));
    expect(await sample(3, 1e-9)).toEqual(
      await generate(model, null, [1, 2], { ...greedy, maxNewTokens: 15 }),
    );
  });
});

describe('sampleToken', () => {
  test('temperature 0 is argmax, first index on ties', () => {
    expect(sampleToken([0.1, 3, 3, -1], { temperature: 0, topP: 0.5 }, new Rng(1))).toBe(1);
  });

  test('top-p keeps the smallest most-likely set reaching p; frequencies follow the renormalised probabilities', () => {
    // probs = [0.5, 0.3, 0.15, 0.05]: top_p 0.75 keeps {0, 1} with 0.5/0.8 and 0.3/0.8
    const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
    const rng = new Rng(5);
    const counts = [0, 0, 0, 0];
    const n = 20000;
    for (let k = 0; k < n; k++) {
      const id = sampleToken(logits, { temperature: 1, topP: 0.75 }, rng);
      counts[id] = (counts[id] as number) + 1;
    }
    expect(counts[2]).toBe(0);
    expect(counts[3]).toBe(0);
    expect(Math.abs((counts[0] as number) / n - 0.625)).toBeLessThan(0.015);
    // temperature 2 flattens: p ∝ sqrt(probs)
    const flat = [0, 0, 0, 0];
    for (let k = 0; k < n; k++) {
      const id = sampleToken(logits, { temperature: 2, topP: 1 }, rng);
      flat[id] = (flat[id] as number) + 1;
    }
    const s = [0.5, 0.3, 0.15, 0.05].map(Math.sqrt);
    const z = s.reduce((a, b) => a + b, 0);
    expect(Math.abs((flat[3] as number) / n - (s[3] as number) / z)).toBeLessThan(0.01);
  });
});

describe('stories260K (llama2.c run.c greedy output)', () => {
  const DIR = new URL('../../checkpoints/base/tinystories-260k/', import.meta.url).pathname;
  const FIX = new URL('../fixtures/stories260K/', import.meta.url).pathname;

  test('256 greedy tokens after BOS are exactly run.c ids and text', async () => {
    const model = await loadModel(DIR);
    const tok = await loadTokenizer(DIR);
    const expected = readFileSync(`${FIX}greedy_t0_n256_noprompt.ids.txt`, 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    const ids = await generate(model, tok, [], { ...greedy, maxNewTokens: 256 });
    expect(ids).toEqual(expected);
    // run.c prints a newline after the generated text.
    expect(`${tok.decode(ids)}\n`).toBe(readFileSync(`${FIX}greedy_t0_n256_noprompt.txt`, 'utf8'));
  });
});
