/**
 * What the benchmark runs, per backend and mode: model sizes, batch shapes, repetitions, and which
 * jobs share a process. The `cpu` backend (plain JavaScript, ~30x slower than wasm) gets a smaller
 * model; `--quick` uses tiny sizes everywhere so the whole run stays under a minute.
 */
import { fileURLToPath } from 'node:url';
import type { Job } from './jobs.js';
import type { LlamaShape, Storage } from './lib/random-llama.js';

/** The training benchmark model: Llama-shaped, about 56M parameters (39.6M in matmuls). */
export const BENCH_MODEL: LlamaShape = {
  vocab_size: 32000,
  hidden_size: 512,
  intermediate_size: 1376,
  num_hidden_layers: 8,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  max_position_embeddings: 1024,
};

/** SmolLM2-135M (HuggingFaceTB/SmolLM2-135M config.json; untied here, as randomLlama builds it). */
export const SMOLLM2_135M: LlamaShape = {
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 2048,
};

/** For the cpu backend: about 1.8M parameters. */
export const SMALL_MODEL: LlamaShape = {
  vocab_size: 4096,
  hidden_size: 128,
  intermediate_size: 344,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 512,
};

/** For --quick: about 0.4M parameters, dimensions distinct from the LoRA rank (the profile tells them apart). */
export const TINY_MODEL: LlamaShape = {
  vocab_size: 1000,
  hidden_size: 96,
  intermediate_size: 256,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
};

export const MAIN_CONFIG = fileURLToPath(new URL('../configs/code_completion.yaml', import.meta.url));

/** The storages the training step is measured with (footprint covers all five). */
export const TRAIN_STORAGES: readonly Storage[] = ['fp32', 'bf16', 'nf4'];

export interface Sizes {
  model: LlamaShape;
  batchSize: number;
  seqLen: number;
  r: number;
  warmup: number;
  runs: number;
  matmulSizes: number[];
  matmulSeconds: number;
  promptTokens: number;
  newTokens: number;
  mainJobSet: string[];
  /**
   * A smaller micro-batch at which fp32 is also measured with and without checkpointing: one tape
   * over the whole model does not fit the 4 GiB wasm heap at the main size (null: not needed).
   */
  compareBatch: number | null;
}

/** Sizes for a backend in a mode; `runs` overrides the timed repetitions. */
export function sizesFor(backend: string, quick: boolean, runs?: number): Sizes {
  if (quick) {
    return {
      model: TINY_MODEL,
      batchSize: 1,
      seqLen: 64,
      r: 8,
      warmup: 0,
      runs: runs ?? 1,
      matmulSizes: [256],
      matmulSeconds: 0.3,
      promptTokens: 8,
      newTokens: 8,
      mainJobSet: ['max_steps=1', 'micro_batch_size=1', 'eval_max_samples=1'],
      compareBatch: null,
    };
  }
  if (backend === 'cpu') {
    return {
      model: SMALL_MODEL,
      batchSize: 2,
      seqLen: 128,
      r: 16,
      warmup: 1,
      runs: runs ?? 2,
      matmulSizes: [256, 512],
      matmulSeconds: 2,
      promptTokens: 16,
      newTokens: 16,
      mainJobSet: ['max_steps=2', 'eval_max_samples=8'],
      compareBatch: null,
    };
  }
  return {
    model: BENCH_MODEL,
    batchSize: 4,
    seqLen: 256,
    r: 16,
    warmup: 0,
    runs: runs ?? 2,
    matmulSizes: [512, 1024, 2048],
    matmulSeconds: 2,
    promptTokens: 32,
    newTokens: 32,
    mainJobSet: [], // the whole job, as configured
    compareBatch: 2,
  };
}

/** The sections a run can be limited to (`--only`). */
export const SECTIONS = ['matmul', 'train', 'inference', 'memory', 'profile', 'job', 'data'] as const;
export type Section = (typeof SECTIONS)[number];

/** Groups of jobs for one backend; each group runs in one worker process. */
export function backendPlan(
  backend: string,
  quick: boolean,
  only: ReadonlySet<Section>,
  runs?: number,
): Job[][] {
  const s = sizesFor(backend, quick, runs);
  const shape = { model: s.model, batchSize: s.batchSize, seqLen: s.seqLen, r: s.r };
  const light: Job[] = [];
  if (only.has('matmul')) light.push({ kind: 'matmul', sizes: s.matmulSizes, seconds: s.matmulSeconds });
  if (only.has('memory')) {
    light.push({
      kind: 'footprint',
      model: s.model,
      storages: ['fp32', 'bf16', 'fp16', 'int8', 'nf4'],
      dequantSide: quick ? 512 : 4096,
    });
  }
  if (only.has('inference')) {
    for (const storage of ['fp32', 'nf4'] as const) {
      light.push({
        kind: 'inference',
        ...shape,
        storage,
        runs: s.runs,
        promptTokens: s.promptTokens,
        newTokens: s.newTokens,
      });
    }
  }
  const train: Job[] = [];
  if (only.has('train')) {
    for (const storage of TRAIN_STORAGES) {
      for (const checkpointing of [true, false]) {
        train.push({ kind: 'train-step', ...shape, storage, checkpointing, warmup: s.warmup, runs: s.runs });
      }
    }
    if (s.compareBatch !== null) {
      for (const checkpointing of [true, false]) {
        train.push({
          kind: 'train-step',
          ...shape,
          batchSize: s.compareBatch,
          storage: 'fp32',
          checkpointing,
          warmup: s.warmup,
          runs: s.runs,
        });
      }
    }
  }
  const profile: Job[] = only.has('profile')
    ? [{ kind: 'profile', ...shape, storage: 'fp32', checkpointing: true }]
    : [];
  const mainJob: Job[] = only.has('job')
    ? [{ kind: 'main-job', configFile: MAIN_CONFIG, backend, set: s.mainJobSet }]
    : [];
  // the main job pays its own start-up in a fresh process; in full mode each training configuration
  // gets a process of its own so its peak RSS is its own
  if (quick) return [mainJob, [...light, ...train, ...profile]].filter((g) => g.length > 0);
  return [mainJob, light, ...train.map((j) => [j]), profile].filter((g) => g.length > 0);
}

/** The backend-independent data job. */
export function dataJob(quick: boolean): Job {
  return quick
    ? { kind: 'data', configFile: MAIN_CONFIG, streamMB: 4, pipelineMB: 0.5, stageRecords: 20 }
    : { kind: 'data', configFile: MAIN_CONFIG, streamMB: 256, pipelineMB: 32, stageRecords: null };
}
