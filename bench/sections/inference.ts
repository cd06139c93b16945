/**
 * 3) Forward-only (eval) tokens/s, as the trainer's evaluation runs it (`forward` with the LoRA
 * adapters applied, no gradients), and generation tokens/s with the KV cache (`generate`, greedy):
 * the prompt's prefill and the per-token decode rate separately.
 */
import * as tf from '@tensorflow/tfjs';
import { forward, generate } from '../../src/model/index.js';
import { Rng } from '../../src/util/index.js';
import { forwardFlops } from '../lib/flops.js';
import { repeat, sig, type Timing } from '../lib/measure.js';
import { benchLora, type LlamaShape, randomBatch, randomLlama, type Storage } from '../lib/random-llama.js';

export interface InferenceJob {
  kind: 'inference';
  model: LlamaShape;
  storage: Storage;
  batchSize: number;
  seqLen: number;
  r: number;
  runs: number;
  promptTokens: number;
  newTokens: number;
}

export interface InferenceResult {
  kind: 'inference';
  storage: Storage;
  batchSize: number;
  seqLen: number;
  forward: Timing;
  forwardTokensPerS: number;
  forwardGflopsWall: number;
  forwardGflopsCpu: number;
  promptTokens: number;
  generatedTokens: number;
  /** Time to the first generated token (prefill of the prompt + one sampling step). */
  prefillS: number;
  /** Generated tokens per second after the first. */
  decodeTokensPerS: number;
  /** All generated tokens / whole generate() call. */
  generateTokensPerS: number;
  tensorsBefore: number;
  tensorsAfter: number;
}

/** Run forward and generate on a random model with a fresh (B = 0) r-rank adapter. */
export async function runInference(job: InferenceJob): Promise<InferenceResult> {
  const model = randomLlama(job.model, job.storage, 1);
  const lora = benchLora(model, job.r, 0);
  const modelLora = lora.toModelLora();
  const batch = randomBatch(job.model.vocab_size, job.batchSize, job.seqLen, 3);
  const tokens = job.batchSize * job.seqLen;
  const tensorsBefore = tf.memory().numTensors;
  const fwd = await repeat(() => forward(model, batch, { lora: modelLora }), 1, job.runs);
  const flops = forwardFlops(model.spec, tokens, job.seqLen, job.r, lora.config.targets);

  const rng = new Rng(4);
  const prompt = Array.from({ length: job.promptTokens }, () => rng.int(job.model.vocab_size));
  const stamps: number[] = [];
  const start = performance.now();
  const ids = await generate(model, null, prompt, {
    maxNewTokens: job.newTokens,
    temperature: 0,
    topP: 1,
    seed: 0,
    lora: modelLora,
    onToken: () => stamps.push(performance.now()),
  });
  const end = performance.now();
  const tensorsAfter = tf.memory().numTensors;
  lora.dispose();
  const first = stamps[0] ?? end;
  const last = stamps[stamps.length - 1] ?? end;
  return {
    kind: 'inference',
    storage: job.storage,
    batchSize: job.batchSize,
    seqLen: job.seqLen,
    forward: { wallS: sig(fwd.wallS), cpuS: sig(fwd.cpuS) },
    forwardTokensPerS: sig(tokens / fwd.wallS),
    forwardGflopsWall: sig(flops / fwd.wallS / 1e9),
    forwardGflopsCpu: sig(flops / fwd.cpuS / 1e9),
    promptTokens: prompt.length,
    generatedTokens: ids.length,
    prefillS: sig((first - start) / 1000),
    decodeTokensPerS: sig(stamps.length > 1 ? ((stamps.length - 1) * 1000) / (last - first) : 0),
    generateTokensPerS: sig((ids.length * 1000) / (end - start)),
    tensorsBefore,
    tensorsAfter,
  };
}
