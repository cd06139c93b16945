/**
 * Layer-wise recompute (gradient_checkpointing: true) against one tape over the whole model
 * (false): time per micro-batch of `lossAndGrads` and the wasm heap it needed.
 *
 *   node --import tsx bench/gradient-checkpointing.ts [--backend wasm|cpu] [--runs 3] [--case tiny|20m]
 *
 * Cases: `tiny` = checkpoints/base/tinystories-260k at seq 256, batch 8; `20m` = a Llama-shaped
 * model with random weights (hidden 512, 6 layers, 8 heads / 4 kv heads, mlp 1376, vocab 4096:
 * 20.4M parameters) at seq 256, batch 4. LoRA r 8 on all linear layers. Each (case, mode) runs in
 * its own process so the heap figure is that mode's peak (the wasm heap only grows).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { createLora, lossAndGrads } from '../src/lora/index.js';
import { type LoadedModel, loadModel } from '../src/model/index.js';
import { randomBatch, randomLlama } from './lib/random-llama.js';

interface Case {
  name: string;
  batchSize: number;
  seqLen: number;
  model(): Promise<LoadedModel>;
}

const TINY_DIR = fileURLToPath(new URL('../checkpoints/base/tinystories-260k', import.meta.url));

const CASES: Record<string, Case> = {
  tiny: { name: 'tinystories-260k', batchSize: 8, seqLen: 256, model: () => loadModel(TINY_DIR) },
  '20m': {
    name: 'llama-20m (random)',
    batchSize: 4,
    seqLen: 256,
    model: async () =>
      randomLlama(
        {
          vocab_size: 4096,
          hidden_size: 512,
          intermediate_size: 1376,
          num_hidden_layers: 6,
          num_attention_heads: 8,
          num_key_value_heads: 4,
          max_position_embeddings: 1024,
        },
        'fp32',
        1,
      ),
  },
};

function heapBytes(): number | null {
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  return wasm?.HEAPU8?.buffer.byteLength ?? tf.memory().numBytes ?? null;
}

async function child(caseName: string, checkpointing: boolean, backend: 'wasm' | 'cpu', runs: number) {
  await initBackend(backend);
  const c = CASES[caseName]!;
  const model = await c.model();
  const params =
    model.embed_tokens.shape[0]! * model.embed_tokens.shape[1]! * (model.spec.tie_word_embeddings ? 1 : 2) +
    model.layers.reduce(
      (s, l) =>
        s + Object.values(l).reduce((a, t) => a + t.shape.reduce((x: number, y: number) => x * y, 1), 0),
      0,
    );
  const lora = createLora(model, {
    r: 8,
    alpha: 16,
    dropout: 0.05,
    targets: 'all-linear',
    useRslora: false,
    seed: 1,
  });
  const batch = randomBatch(model.spec.vocab_size, c.batchSize, c.seqLen, 2);
  const times: number[] = [];
  let peakHeap = 0;
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    const r = await lossAndGrads(model, lora, batch, { lossScale: 1 / 1000, dropoutSeed: i, checkpointing });
    tf.dispose([...r.grads.values()]);
    const dt = performance.now() - t0;
    if (i > 0) times.push(dt); // the first call compiles / warms up
    peakHeap = Math.max(peakHeap, heapBytes() ?? 0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  const tokens = c.batchSize * c.seqLen;
  process.stdout.write(
    `${JSON.stringify({
      case: c.name,
      backend,
      params,
      batch: c.batchSize,
      seq: c.seqLen,
      checkpointing,
      ms_median: Math.round(median),
      tokens_per_s: Math.round((tokens / median) * 1000),
      peak_heap_mib: peakHeap ? Math.round(peakHeap / 2 ** 20) : null,
    })}\n`,
  );
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

if (process.argv.includes('--child')) {
  await child(
    arg('case', 'tiny'),
    arg('checkpointing', 'true') === 'true',
    arg('backend', 'wasm') as 'wasm',
    Number(arg('runs', '3')),
  );
} else {
  const backend = arg('backend', 'wasm');
  const runs = arg('runs', '3');
  const only = arg('case', '');
  const self = fileURLToPath(import.meta.url);
  for (const caseName of Object.keys(CASES)) {
    if (only && only !== caseName) continue;
    if (caseName === 'tiny' && !existsSync(TINY_DIR)) {
      process.stderr.write(`skipping tiny: ${TINY_DIR} not found\n`);
      continue;
    }
    for (const ck of ['true', 'false']) {
      const args = [
        '--import',
        'tsx',
        self,
        '--child',
        '--case',
        caseName,
        '--checkpointing',
        ck,
        '--backend',
        backend,
        '--runs',
        runs,
      ];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
      process.stdout.write(r.stdout);
      if (r.status !== 0) process.stderr.write(r.stderr);
    }
  }
}
