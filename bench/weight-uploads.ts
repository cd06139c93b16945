/**
 * Bytes handed from JavaScript to the tfjs backend during one training micro-batch (lossAndGrads:
 * forward, head, backward): on webgpu, the bytes uploaded from the CPU to the GPU. Counted by
 * wrapping the backend's `write` (every tf.tensor made from JS values passes there), for the
 * streamed weight provider (each layer's fp32 weights from the CPU, every pass) and for
 * `trainingWeights` (on webgpu: storage uploaded once, layers widened on the GPU).
 *
 *   node --import tsx bench/weight-uploads.ts [--backend webgpu] [--shapes main,56m,135m]
 *                                             [--batch 1] [--seq 32]
 *
 * `main` is the main job (tinystories-260k, NF4 + double quant, 16 x 128, one tape); 56m and 135m
 * are random Llama models (bench/plan.ts's BENCH_MODEL and SmolLM2-135M, NF4 + double quant,
 * checkpointing) at --batch x --seq: the weight bytes do not depend on the batch, so a small batch
 * keeps lavapipe fast. Prints one line per shape and provider.
 */
import * as tf from '@tensorflow/tfjs';
import { type BackendChoice, initBackend } from '../src/backend/index.js';
import { lossAndGrads } from '../src/lora/index.js';
import type { Batch } from '../src/model/batch.js';
import {
  type LoadedModel,
  layerBytes,
  loadModel,
  streamedWeights,
  trainingWeights,
  type WeightProvider,
} from '../src/model/index.js';
import { benchLora, randomBatch, randomLlama } from './lib/random-llama.js';
import { BENCH_MODEL, SMOLLM2_135M } from './plan.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

/** Bytes passed to the backend's `write` while `f` runs. */
async function bytesWritten(f: () => Promise<void>): Promise<number> {
  const backend = tf.backend() as unknown as {
    write: (values: ArrayBufferView | null, ...rest: unknown[]) => unknown;
  };
  const write = backend.write;
  let bytes = 0;
  backend.write = function (values, ...rest) {
    bytes += values?.byteLength ?? 0;
    return write.call(this, values, ...rest);
  };
  try {
    await f();
  } finally {
    backend.write = write;
  }
  return bytes;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;

async function measure(
  label: string,
  model: LoadedModel,
  batch: Batch,
  checkpointing: boolean,
): Promise<void> {
  const lora = benchLora(model, 8, 0);
  const step = async (weights: WeightProvider) => {
    const r = await lossAndGrads(model, lora, batch, { lossScale: 1, checkpointing, weights });
    tf.dispose([...r.grads.values()]);
  };
  const providers: [string, () => WeightProvider][] = [
    ['streamed', () => streamedWeights(model)],
    ['trainingWeights', () => trainingWeights(model)],
  ];
  for (const [name, make] of providers) {
    let weights: WeightProvider | undefined;
    const atLoad = await bytesWritten(async () => {
      weights = make();
    });
    await step(weights!); // warm-up: shaders compiled, buffers allocated
    const perStep = await bytesWritten(() => step(weights!));
    weights!.dispose();
    console.log(
      `${label} | ${name} | once at load ${mib(atLoad)} | per micro-batch ${mib(perStep)} (layers in fp32: ${mib(layerBytes(model))} per pass)`,
    );
  }
  lora.dispose();
}

const backend = await initBackend(arg('backend', 'webgpu') as BackendChoice);
const B = Number(arg('batch', '1'));
const T = Number(arg('seq', '32'));
console.log(`backend ${backend}; bytes handed to the backend (tf.tensor data)`);
for (const shape of arg('shapes', 'main,56m,135m').split(',')) {
  if (shape === 'main') {
    const model = await loadModel('checkpoints/base/tinystories-260k', {
      quantization: 'nf4',
      doubleQuant: true,
    });
    await measure(
      'main job, 16 x 128, one tape',
      model,
      randomBatch(model.spec.vocab_size, 16, 128, 1),
      false,
    );
  } else {
    const s = shape === '56m' ? BENCH_MODEL : SMOLLM2_135M;
    const model = randomLlama(s, 'nf4', 1);
    await measure(`${shape}, ${B} x ${T}, checkpointing`, model, randomBatch(s.vocab_size, B, T, 1), true);
  }
}
