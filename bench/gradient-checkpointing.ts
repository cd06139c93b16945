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
import type { Batch } from '../src/model/batch.js';
import { type LoadedModel, loadModel } from '../src/model/index.js';
import { buildModel } from '../src/model/load.js';
import { parseModelSpec } from '../src/model/spec.js';
import { Rng } from '../src/util/index.js';
import type { TensorData } from '../src/weights/safetensors.js';

interface Case {
  name: string;
  batchSize: number;
  seqLen: number;
  model(): Promise<LoadedModel>;
}

const TINY_DIR = fileURLToPath(new URL('../checkpoints/base/tinystories-260k', import.meta.url));

/** A Llama-shaped model with random weights (the timing does not depend on the values). */
function randomLlama(config: Record<string, unknown>): LoadedModel {
  const spec = parseModelSpec({ architectures: ['LlamaForCausalLM'], torch_dtype: 'float32', ...config });
  const rng = new Rng(1);
  const names = new Map<string, number[]>();
  const H = spec.hidden_size;
  const I = spec.intermediate_size;
  const kv = spec.num_key_value_heads * spec.head_dim;
  names.set('model.embed_tokens.weight', [spec.vocab_size, H]);
  names.set('model.norm.weight', [H]);
  names.set('lm_head.weight', [spec.vocab_size, H]);
  for (let i = 0; i < spec.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    names.set(`${p}.input_layernorm.weight`, [H]);
    names.set(`${p}.post_attention_layernorm.weight`, [H]);
    names.set(`${p}.self_attn.q_proj.weight`, [H, H]);
    names.set(`${p}.self_attn.k_proj.weight`, [kv, H]);
    names.set(`${p}.self_attn.v_proj.weight`, [kv, H]);
    names.set(`${p}.self_attn.o_proj.weight`, [H, H]);
    names.set(`${p}.mlp.gate_proj.weight`, [I, H]);
    names.set(`${p}.mlp.up_proj.weight`, [I, H]);
    names.set(`${p}.mlp.down_proj.weight`, [H, I]);
  }
  const read = (name: string): TensorData => {
    const shape = names.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const s = shape.length === 1 ? 0 : 1 / Math.sqrt(shape[1]!);
    for (let k = 0; k < n; k++) data[k] = shape.length === 1 ? 1 : (2 * rng.next() - 1) * s;
    return { dtype: 'F32', shape, data };
  };
  return buildModel('random-llama-20m', spec, { names: () => [...names.keys()], read });
}

const CASES: Record<string, Case> = {
  tiny: { name: 'tinystories-260k', batchSize: 8, seqLen: 256, model: () => loadModel(TINY_DIR) },
  '20m': {
    name: 'llama-20m (random)',
    batchSize: 4,
    seqLen: 256,
    model: async () =>
      randomLlama({
        vocab_size: 4096,
        hidden_size: 512,
        intermediate_size: 1376,
        num_hidden_layers: 6,
        num_attention_heads: 8,
        num_key_value_heads: 4,
        max_position_embeddings: 1024,
        tie_word_embeddings: false,
      }),
  },
};

/** One packed batch of random tokens, two documents per row. */
function benchBatch(vocab: number, B: number, T: number): Batch {
  const rng = new Rng(2);
  const n = B * T;
  const inputIds = new Int32Array(n).map(() => rng.int(vocab));
  const segmentIds = new Int32Array(n).map((_, k) => (k % T < T / 2 ? 0 : 1));
  const positionIds = new Int32Array(n).map((_, k) => (k % T) % (T / 2));
  const labels = new Int32Array(n).map((_, k) =>
    (k % T) + 1 < T && segmentIds[k + 1] === segmentIds[k] ? inputIds[k + 1]! : -100,
  );
  return { batchSize: B, seqLen: T, inputIds, labels, segmentIds, positionIds };
}

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
  const batch = benchBatch(model.spec.vocab_size, c.batchSize, c.seqLen);
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
