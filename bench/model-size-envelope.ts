/**
 * The practical size envelope on CPU: tokens per second of the forward pass, of forward + backward
 * with LoRA (r 8, all linear layers, layer-wise recompute), and of greedy generation with the KV
 * cache, for Llama-shaped models of about 1M, 10M, 50M (and 135M) parameters with random weights
 * (the timing does not depend on the values).
 *
 *   node --import tsx bench/model-size-envelope.ts [--backend wasm|cpu] [--sizes 1m,10m,50m,135m]
 *                                                 [--seq 256] [--batch 4] [--runs 3]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { createLora, lossAndGrads } from '../src/lora/index.js';
import type { Batch } from '../src/model/batch.js';
import { forward, generate, type LoadedModel } from '../src/model/index.js';
import { Rng } from '../src/util/index.js';
import { type LlamaShape, randomLlama } from './lib/random-llama.js';

/** Llama shapes; 135m is SmolLM2-135M's (GQA 9/3, tied embeddings). */
const SIZES: Record<string, LlamaShape> = {
  '1m': {
    hidden_size: 128,
    intermediate_size: 344,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    vocab_size: 512,
  },
  '10m': {
    hidden_size: 256,
    intermediate_size: 688,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    vocab_size: 8192,
  },
  '50m': {
    hidden_size: 512,
    intermediate_size: 1376,
    num_hidden_layers: 10,
    num_attention_heads: 8,
    vocab_size: 16384,
  },
  '135m': {
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    vocab_size: 49152,
    tie_word_embeddings: true,
  },
};

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

function params(model: LoadedModel): number {
  const count = (t: { shape: readonly number[] }) => t.shape.reduce((a, b) => a * b, 1);
  let n = count(model.embed_tokens) + count(model.norm);
  if (model.lm_head !== model.embed_tokens) n += count(model.lm_head);
  for (const l of model.layers) for (const t of Object.values(l)) n += count(t);
  return n;
}

function randomBatch(B: number, T: number, vocab: number): Batch {
  const rng = new Rng(2);
  const inputIds = Int32Array.from({ length: B * T }, () => rng.int(vocab));
  const labels = Int32Array.from({ length: B * T }, (_, i) =>
    (i + 1) % T === 0 ? -100 : (inputIds[i + 1] as number),
  );
  const positionIds = Int32Array.from({ length: B * T }, (_, i) => i % T);
  return { batchSize: B, seqLen: T, inputIds, labels, segmentIds: new Int32Array(B * T), positionIds };
}

/** Median seconds of `runs` calls after one warm-up call. */
async function time(runs: number, f: () => unknown): Promise<number> {
  await f();
  const s: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await f();
    s.push((performance.now() - t0) / 1000);
  }
  return s.sort((a, b) => a - b)[Math.floor(s.length / 2)] as number;
}

const backend = await initBackend(arg('backend', 'wasm') as 'wasm' | 'cpu');
const T = Number(arg('seq', '256'));
const B = Number(arg('batch', '4'));
const runs = Number(arg('runs', '3'));
console.log(`backend ${backend}, batch ${B} x seq ${T}, median of ${runs} runs after a warm-up`);
console.log('size   params   forward tok/s   fwd+bwd LoRA tok/s   generate tok/s');
for (const size of arg('sizes', '1m,10m,50m').split(',')) {
  const model = randomLlama(SIZES[size]!, 'fp32', 1);
  const batch = randomBatch(B, T, model.spec.vocab_size);
  const fwd = await time(runs, () => forward(model, batch));
  const lora = createLora(model, {
    r: 8,
    alpha: 16,
    dropout: 0,
    targets: 'all-linear',
    useRslora: false,
    seed: 1,
  });
  const bwd = await time(runs, async () => {
    const { grads } = await lossAndGrads(model, lora, batch, { lossScale: 1 / (B * T) });
    for (const g of grads.values()) g.dispose();
  });
  lora.dispose();
  const newTokens = 32;
  const gen = await time(1, () =>
    generate(model, null, [1], { maxNewTokens: newTokens, temperature: 0, topP: 1, seed: 0 }),
  );
  console.log(
    `${size.padEnd(6)} ${(params(model) / 1e6).toFixed(1).padStart(6)}M ${((B * T) / fwd).toFixed(0).padStart(15)} ` +
      `${((B * T) / bwd).toFixed(0).padStart(20)} ${(newTokens / gen).toFixed(1).padStart(16)}`,
  );
  if (tf.memory().numTensors > 0) console.log(`  (tensors left: ${tf.memory().numTensors})`);
}
