/**
 * Where the time of one training step goes. `tf.profile` times every kernel (wasm and cpu kernels
 * run synchronously, so a kernel's time is its compute); matmuls are split by what they compute
 * (their input shapes tell: batched = attention, vocabulary-wide = lm_head, rank-r = LoRA, else a
 * frozen projection). Work outside kernels is timed directly: turning frozen layers into fp32
 * tensors (`layerTensors`: widen / dequantize, upload), and building the attention masks and RoPE
 * tables (`createAttentionContext`). The rest of the wall time is engine and JS overhead (tape
 * bookkeeping, tidy scopes, tensor allocation).
 */
import * as tf from '@tensorflow/tfjs';
import { lossAndGrads } from '../../src/lora/index.js';
import {
  createAttentionContext,
  disposeLayerTensors,
  type LoadedModel,
  layerTensors,
} from '../../src/model/index.js';
import { mixSeed } from '../../src/util/index.js';
import { sig, type Timing, time, timeAsync } from '../lib/measure.js';
import { benchLora, randomBatch, randomLlama, type Storage } from '../lib/random-llama.js';
import type { StepShape } from './train-step.js';

export interface ProfileJob extends StepShape {
  kind: 'profile';
}

export interface ProfileCost {
  name: string;
  ms: number;
  /** Share of the profiled step's wall time. */
  share: number;
  /** Kernel calls (0 for work outside kernels). */
  calls: number;
  /** Matmuls: the rate they ran at (FLOPs from their shapes / their time), GFLOP/s; else null. */
  gflops: number | null;
}

export interface ProfileResult {
  kind: 'profile';
  storage: Storage;
  checkpointing: boolean;
  /** The step without the profiler. */
  step: Timing;
  /** The step under tf.profile (the profiler adds a little). */
  profiledWallMs: number;
  kernelMs: number;
  kernelCalls: number;
  /** Every cost, largest first; the first three are the answer to "where does the time go". */
  costs: ProfileCost[];
}

/** Which part of the model a matmul belongs to, from its input shapes. */
function matmulRole(shapes: (number[] | null)[], vocab: number, r: number): string {
  const dims = shapes.filter((s): s is number[] => s !== null);
  if (dims.some((s) => s.includes(vocab))) return 'matmul: lm_head (logits and their gradient)';
  if (dims.some((s) => s.length >= 3 && s.slice(0, -2).reduce((a, b) => a * b, 1) > 1)) {
    return 'matmul: attention (batched Q K^T, P V and gradients)';
  }
  if (dims.some((s) => s.includes(r))) return 'matmul: LoRA (x A^T B^T and gradients)';
  return 'matmul: frozen projections (x W^T, dy W)';
}

/** FLOPs of one batched matmul from its shapes: out [..., M, N], and K from a's size. */
function matmulFlops(inputs: (number[] | null)[], outputs: number[][]): number {
  const a = inputs[0];
  const out = outputs[0];
  if (!a || !out || out.length < 2) return 0;
  const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
  const M = out[out.length - 2]!;
  const N = out[out.length - 1]!;
  const batchA = size(a.slice(0, -2));
  const K = size(a) / (batchA * M);
  return 2 * size(out.slice(0, -2)) * M * N * K;
}

function materializeAll(model: LoadedModel): void {
  for (let i = 0; i < model.layers.length; i++) disposeLayerTensors(layerTensors(model, i));
}

/** Profile one step (after one unprofiled warm-up step, which is also timed). */
export async function runProfile(job: ProfileJob): Promise<ProfileResult> {
  const model = randomLlama(job.model, job.storage, 1);
  const lora = benchLora(model, job.r, 0.1);
  const batch = randomBatch(job.model.vocab_size, job.batchSize, job.seqLen, 2);
  const tokens = job.batchSize * job.seqLen;
  const oneStep = async (n: number) => {
    const r = await lossAndGrads(model, lora, batch, {
      lossScale: 1 / tokens,
      dropoutSeed: mixSeed(1, n, 0),
      checkpointing: job.checkpointing,
    });
    tf.dispose([...r.grads.values()]);
  };
  const step = await timeAsync(() => oneStep(1));

  const backend = tf.getBackend();
  const t0 = performance.now();
  const info = await tf.profile(async () => {
    await oneStep(2);
    return [];
  });
  const profiledWallMs = performance.now() - t0;

  const groups = new Map<string, { ms: number; calls: number; flops: number }>();
  let kernelMs = 0;
  let kernelCalls = 0;
  for (const k of info.kernels) {
    // composite scopes (custom gradients) also appear, wrapping kernels already listed: skip them
    if (tf.getKernel(k.name, backend) === undefined) continue;
    const ms = Number(k.kernelTimeMs);
    const isMatmul = k.name === 'BatchMatMul' || k.name === '_FusedMatMul';
    const name = isMatmul ? matmulRole(k.inputShapes, job.model.vocab_size, job.r) : `kernel: ${k.name}`;
    const g = groups.get(name) ?? { ms: 0, calls: 0, flops: 0 };
    g.ms += ms;
    g.calls += 1;
    if (isMatmul) g.flops += matmulFlops(k.inputShapes, k.outputShapes);
    groups.set(name, g);
    kernelMs += ms;
    kernelCalls += 1;
  }

  // outside kernels, timed directly: per-pass weight materialization and the attention context
  const passes = job.checkpointing ? 2 : 1;
  const weightsMs = time(() => materializeAll(model)).wallS * 1000 * passes;
  const ctxMs =
    time(() => {
      createAttentionContext(model.spec, batch).dispose();
    }).wallS * 1000;
  const otherMs = Math.max(0, profiledWallMs - kernelMs - weightsMs - ctxMs);
  lora.dispose();

  const costs: ProfileCost[] = [
    ...[...groups.entries()].map(([name, g]) => ({
      name,
      ms: g.ms,
      calls: g.calls,
      gflops: g.flops > 0 ? sig(g.flops / g.ms / 1e6) : null,
    })),
    {
      name: 'outside kernels: frozen layers to fp32 tensors (widen / dequantize)',
      ms: weightsMs,
      calls: 0,
      gflops: null,
    },
    { name: 'outside kernels: attention masks and RoPE tables', ms: ctxMs, calls: 0, gflops: null },
    {
      name: 'outside kernels: engine / JS overhead (tape, tidy, allocation)',
      ms: otherMs,
      calls: 0,
      gflops: null,
    },
  ]
    .map((c) => ({ ...c, ms: sig(c.ms), share: sig(c.ms / profiledWallMs, 3) }))
    .sort((a, b) => b.ms - a.ms);
  return {
    kind: 'profile',
    storage: job.storage,
    checkpointing: job.checkpointing,
    step: { wallS: sig(step.wallS), cpuS: sig(step.cpuS) },
    profiledWallMs: sig(profiledWallMs),
    kernelMs: sig(kernelMs),
    kernelCalls,
    costs,
  };
}
