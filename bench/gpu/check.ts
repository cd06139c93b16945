/**
 * The real-GPU check of backend webgpu, as one process (bundled by bench/gpu/prepare.sh):
 *   1. the llama-golden goldens on webgpu: logits, loss, LoRA logits and every LoRA gradient
 *      against the float64 references of test/fixtures/llama-golden (same bounds as the tests);
 *   2. training-step figures (lossAndGrads + AdamW, one micro-batch, LoRA r 8 all-linear,
 *      checkpointing): tokens/s and MFU against the GPU's fp32 rate, for the 56M benchmark shape
 *      and a SmolLM2-135M shape (random weights).
 *
 *   node check.mjs --fixture DIR [--peak-tflops 67] [--batch 4] [--seq 512] [--runs 3] [--out FILE]
 *
 * --peak-tflops: the GPU's dense fp32 (non-tensor-core) rate; 67 is NVIDIA's figure for the H200
 * SXM. WebGPU has no tensor cores, so fp32 is the rate to compare with. Exit 1 when a golden fails.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, probeBackends } from '../../src/backend/index.js';
import { loadAdapter, loraFromAdapter, lossAndGrads } from '../../src/lora/index.js';
import type { Batch } from '../../src/model/batch.js';
import { forward, loadModel, trainingWeights } from '../../src/model/index.js';
import { AdamW } from '../../src/train/index.js';
import { SafetensorsFile } from '../../src/weights/index.js';
import { paramCounts, trainStepFlops } from '../lib/flops.js';
import { benchLora, type LlamaShape, randomBatch, randomLlama } from '../lib/random-llama.js';
import { BENCH_MODEL, SMOLLM2_135M } from '../plan.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

function relMaxErr(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (ours.length !== ref.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(ours[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return d / m;
}

function causalBatch(ids: Int32Array, B: number, T: number): Batch {
  const labels = new Int32Array(B * T).fill(-100);
  const positionIds = new Int32Array(B * T);
  for (let k = 0; k < B * T; k++) {
    positionIds[k] = k % T;
    if (k % T < T - 1) labels[k] = ids[k + 1]!;
  }
  return { batchSize: B, seqLen: T, inputIds: ids, labels, segmentIds: new Int32Array(B * T), positionIds };
}

interface Golden {
  name: string;
  value: number;
  bound: number;
  pass: boolean;
}

async function goldens(fixture: string): Promise<Golden[]> {
  const out: Golden[] = [];
  const check = (name: string, value: number, bound: number) =>
    out.push({ name, value, bound, pass: value < bound });
  const golden = SafetensorsFile.open(join(fixture, 'golden.safetensors'));
  const grads = SafetensorsFile.open(join(fixture, 'lora_grads.safetensors'));
  const ref = (n: string) => golden.read(n).data as Float32Array;
  const meta = JSON.parse(readFileSync(join(fixture, 'golden.json'), 'utf8')) as { loss: number };
  const model = await loadModel(fixture);
  const batch = causalBatch(golden.read('input_ids').data as Int32Array, 2, 24);
  const base = await forward(model, batch, { returnLogits: true });
  check('logits rel max err', relMaxErr(base.logits!, ref('logits')), 1e-4);
  check('loss abs err', Math.abs(base.lossSum / base.count - meta.loss), 1e-4);
  const lora = loraFromAdapter(model, loadAdapter(join(fixture, 'adapter')));
  const withLora = await forward(model, batch, { lora: lora.toModelLora(), returnLogits: true });
  check('LoRA logits rel max err', relMaxErr(withLora.logits!, ref('lora_logits')), 1e-4);
  check('LoRA loss abs err', Math.abs(withLora.lossSum / withLora.count - ref('lora_loss')[0]!), 1e-4);
  for (const checkpointing of [true, false]) {
    const r = await lossAndGrads(model, lora, batch, { lossScale: 1 / withLora.count, checkpointing });
    let worst = 0;
    for (const [key, g] of r.grads) {
      worst = Math.max(worst, relMaxErr(await g.data(), grads.read(key).data as Float32Array));
    }
    check(`LoRA gradients worst rel max err (checkpointing ${checkpointing})`, worst, 1e-3);
    tf.dispose([...r.grads.values()]);
  }
  lora.dispose();
  golden.close();
  grads.close();
  return out;
}

interface StepFigures {
  shape: string;
  params_m: number;
  batch: string;
  step_s: number;
  tokens_per_s: number;
  tflops: number;
  mfu: number;
}

async function trainStep(
  name: string,
  shape: LlamaShape,
  B: number,
  T: number,
  runs: number,
  peak: number,
): Promise<StepFigures> {
  const model = randomLlama(shape, 'bf16', 1);
  const lora = benchLora(model, 8, 0.05);
  const opt = new AdamW(lora.variables, {
    adam_beta1: 0.9,
    adam_beta2: 0.999,
    adam_epsilon: 1e-8,
    weight_decay: 0,
  });
  const batch = randomBatch(shape.vocab_size, B, T, 2);
  const weights = trainingWeights(model); // the bf16 base uploaded once, widened on the GPU per layer
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    const r = await lossAndGrads(model, lora, batch, { lossScale: 1 / (B * T), dropoutSeed: i, weights });
    opt.update(r.grads, 1e-4);
    tf.dispose([...r.grads.values()]);
    await (lora.variables.values().next().value as tf.Variable).data(); // the step's work is done
    if (i > 0) times.push((performance.now() - t0) / 1000); // the first step compiles the shaders
  }
  times.sort((a, b) => a - b);
  const s = times[Math.floor((times.length - 1) / 2)]!;
  const flops = trainStepFlops(model.spec, {
    tokens: B * T,
    seqLen: T,
    r: 8,
    targets: lora.config.targets,
    checkpointing: true,
  }).total;
  weights.dispose();
  lora.dispose();
  opt.dispose();
  return {
    shape: name,
    params_m: Math.round(paramCounts(model.spec).total / 1e5) / 10,
    batch: `${B} x ${T}`,
    step_s: s,
    tokens_per_s: (B * T) / s,
    tflops: flops / s / 1e12,
    mfu: flops / s / (peak * 1e12),
  };
}

const fixture = arg('fixture', 'test/fixtures/llama-golden');
const peak = Number(arg('peak-tflops', '67'));
const B = Number(arg('batch', '4'));
const T = Number(arg('seq', '512'));
const runs = Number(arg('runs', '3'));
const probe = (await probeBackends()).find((p) => p.name === 'webgpu')!;
process.stdout.write(`webgpu: ${probe.detail}\n`);
await initBackend('webgpu');
const g = await goldens(fixture);
for (const x of g)
  process.stdout.write(`${x.pass ? 'ok  ' : 'FAIL'} ${x.name}: ${x.value.toExponential(2)} (< ${x.bound})\n`);
const steps: StepFigures[] = [];
for (const [name, shape] of [
  ['56M (bench)', BENCH_MODEL],
  ['SmolLM2-135M', SMOLLM2_135M],
] as const) {
  const f = await trainStep(name, shape, B, T, runs, peak);
  steps.push(f);
  process.stdout.write(
    `${name}: ${f.params_m}M params, ${f.batch}, step ${f.step_s.toFixed(3)} s, ${f.tokens_per_s.toFixed(0)} tok/s, ${f.tflops.toFixed(2)} TFLOP/s, MFU ${(100 * f.mfu).toFixed(2)}% of ${peak} TFLOP/s fp32\n`,
  );
}
const out = arg('out', '');
if (out)
  writeFileSync(
    out,
    `${JSON.stringify({ adapter: probe.adapter, peak_tflops: peak, goldens: g, steps }, null, 2)}\n`,
  );
process.exit(g.every((x) => x.pass) ? 0 : 1);
