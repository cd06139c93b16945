/**
 * 2) and 5) One LoRA training step on a Llama-shaped model with random weights: `lossAndGrads`
 * (forward, head, layer-wise backward) plus the AdamW update of src/train, with gradient
 * checkpointing on or off, for a storage dtype of the frozen base. Also what the base holds
 * (bytes per parameter) and the peak RSS of the process, which runs only this job.
 */
import * as tf from '@tensorflow/tfjs';
import { lossAndGrads } from '../../src/lora/index.js';
import { disposeLayerTensors, type LoadedModel, layerTensors } from '../../src/model/index.js';
import {
  LoraMirror,
  openSharedModel,
  parallelTrainable,
  shareModel,
  WorkerPool,
} from '../../src/parallel/index.js';
import { AdamW } from '../../src/train/index.js';
import { loraTrainable } from '../../src/train/lora-trainable.js';
import { mixSeed } from '../../src/util/index.js';
import { paramCounts, type StepFlops, trainStepFlops } from '../lib/flops.js';
import { peakRssMiB, repeat, rssMiB, sig, type Timing, time } from '../lib/measure.js';
import {
  benchLora,
  benchLoraOptions,
  heldBytes,
  type LlamaShape,
  randomBatch,
  randomLlama,
  type Storage,
} from '../lib/random-llama.js';

/** What one LoRA training step runs on: the model, its storage, the batch and the adapter rank. */
export interface StepShape {
  model: LlamaShape;
  storage: Storage;
  checkpointing: boolean;
  batchSize: number;
  seqLen: number;
  r: number;
}

export interface TrainStepJob extends StepShape {
  kind: 'train-step';
  warmup: number;
  runs: number;
  /** Worker threads sharing the step's rows (src/parallel, as `num_workers`); default 1: this thread. */
  workers?: number;
}

/** A configuration that ran. */
export interface TrainStepResult {
  kind: 'train-step';
  fits: true;
  workers: number;
  storage: Storage;
  checkpointing: boolean;
  batchSize: number;
  seqLen: number;
  r: number;
  params: number;
  loraParams: number;
  /** Bytes the frozen base holds / its parameters. */
  bytesPerParam: number;
  baseMiB: number;
  /** Seconds to build (and convert / quantize) the base. */
  buildS: number;
  /** Median step: lossAndGrads + AdamW. */
  step: Timing;
  /** Of which the AdamW update. */
  optimizer: Timing;
  /** Of which turning the frozen layers into fp32 tensors (widen / dequantize), estimated per step. */
  weights: Timing;
  tokensPerS: number;
  tokensPerCpuS: number;
  flops: StepFlops;
  gflopsWall: number;
  gflopsCpu: number;
  rssAfterBuildMiB: number;
  peakRssMiB: number;
  /** Size of the wasm heap after the steps (it only grows: its peak); null on other backends. */
  heapMiB: number | null;
  /** tf.memory().numTensors before the first and after the last step (should be equal). */
  tensorsBefore: number;
  tensorsAfter: number;
}

/** A configuration that ran out of memory (the wasm heap stops at 4 GiB). */
export interface TrainStepNoFit {
  kind: 'train-step';
  fits: false;
  storage: Storage;
  checkpointing: boolean;
  batchSize: number;
  seqLen: number;
  r: number;
  heapMiB: number | null;
  peakRssMiB: number;
  error: string;
}

/** The wasm heap's size in MiB, or null on other backends. */
export function wasmHeapMiB(): number | null {
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  const bytes = wasm?.HEAPU8?.buffer.byteLength;
  return bytes === undefined ? null : bytes / 2 ** 20;
}

// What tfjs-backend-wasm throws once its heap has reached 4 GiB and cannot grow (its allocator
// aborts, or a kernel writes past the end), and what V8 throws when a typed array cannot be allocated.
const WASM_OUT_OF_MEMORY = /Aborted\(\)|memory access out of bounds|Cannot enlarge memory/;
const JS_OUT_OF_MEMORY = /Array buffer allocation failed|out of memory/i;

function isOutOfMemory(message: string): boolean {
  const heap = wasmHeapMiB();
  if (heap !== null && heap >= 4000 && WASM_OUT_OF_MEMORY.test(message)) return true;
  return JS_OUT_OF_MEMORY.test(message);
}

/** Materialize every layer's fp32 weights once (what each forward / recompute pass does). */
function materializeAll(model: LoadedModel): void {
  for (let i = 0; i < model.layers.length; i++) disposeLayerTensors(layerTensors(model, i));
}

/**
 * Run the job in this process (which should run nothing else, for the peak RSS). Running out of
 * memory is a result (the configuration does not fit), not a failure; after a wasm abort the
 * process's backend is unusable, so such a job must be the last one of its process.
 */
export async function runTrainStep(job: TrainStepJob): Promise<TrainStepResult | TrainStepNoFit> {
  try {
    return await measureTrainStep(job);
  } catch (e) {
    const message = String((e as Error)?.message ?? e);
    if (!isOutOfMemory(message)) throw e;
    return {
      kind: 'train-step',
      fits: false,
      storage: job.storage,
      checkpointing: job.checkpointing,
      batchSize: job.batchSize,
      seqLen: job.seqLen,
      r: job.r,
      heapMiB: sigOrNull(wasmHeapMiB()),
      peakRssMiB: sig(peakRssMiB()),
      error: message.split('\n')[0]!,
    };
  }
}

function sigOrNull(x: number | null): number | null {
  return x === null ? null : sig(x);
}

async function measureTrainStep(job: TrainStepJob): Promise<TrainStepResult> {
  const workers = job.workers ?? 1;
  const built = time(() => randomLlama(job.model, job.storage, 1));
  const shared = workers > 1 ? shareModel(built.value) : null;
  const model = shared ? openSharedModel(shared) : built.value;
  const rssAfterBuild = rssMiB();
  const counts = paramCounts(model.spec);
  const bytes = heldBytes(model);
  const lora = benchLora(model, job.r, 0.1);
  const mirror = new LoraMirror(lora.variables);
  const pool = shared
    ? await WorkerPool.start(
        workers,
        {
          backend: tf.getBackend() as 'wasm' | 'cpu',
          model: shared,
          lora: benchLoraOptions(job.r, 0.1),
          checkpointing: job.checkpointing,
        },
        mirror,
      )
    : null;
  const info = {
    base_model: 'random',
    config_hash: model.configHash,
    quantization: 'none',
    double_quant: false,
    precision: 'auto',
  } as const;
  const parallel = pool
    ? parallelTrainable(
        loraTrainable(model, lora, { checkpointing: job.checkpointing, training: info }),
        pool,
        mirror,
      )
    : null;
  const optimizer = new AdamW(lora.variables, {
    adam_beta1: 0.9,
    adam_beta2: 0.999,
    adam_epsilon: 1e-8,
    weight_decay: 0,
  });
  const batch = randomBatch(job.model.vocab_size, job.batchSize, job.seqLen, 2);
  const tokens = job.batchSize * job.seqLen;
  let stepNo = 0;
  const optTimes: Timing[] = [];
  const tensorsBefore = tf.memory().numTensors;
  const step = await repeat(
    async () => {
      stepNo++;
      const dropoutSeed = mixSeed(1, stepNo, 0);
      const r = parallel
        ? await parallel.stepLossAndGrads!([batch], { lossScale: 1 / tokens, dropoutSeeds: [dropoutSeed] })
        : await lossAndGrads(model, lora, batch, {
            lossScale: 1 / tokens,
            dropoutSeed,
            checkpointing: job.checkpointing,
          });
      optTimes.push(time(() => optimizer.update(r.grads, 1e-4)));
      tf.dispose([...r.grads.values()]);
    },
    job.warmup,
    job.runs,
  );
  const tensorsAfter = tf.memory().numTensors;
  const optimizerTiming = optTimes[optTimes.length - 1]!;
  const passes = job.checkpointing ? 2 : 1; // forward, and the recompute of the backward pass
  const onePass = time(() => materializeAll(model));
  const flops = trainStepFlops(model.spec, {
    tokens,
    seqLen: job.seqLen,
    r: job.r,
    targets: lora.config.targets,
    checkpointing: job.checkpointing,
  });
  const loraParams = [...lora.variables.values()].reduce((s, v) => s + v.size, 0);
  optimizer.dispose();
  lora.dispose();
  const peakRss = peakRssMiB(); // the whole process, workers included
  await pool?.close();
  return {
    kind: 'train-step',
    fits: true,
    workers,
    storage: job.storage,
    checkpointing: job.checkpointing,
    batchSize: job.batchSize,
    seqLen: job.seqLen,
    r: job.r,
    params: counts.total,
    loraParams,
    bytesPerParam: sig(bytes / counts.total),
    baseMiB: sig(bytes / 2 ** 20),
    buildS: sig(built.wallS),
    step: { wallS: sig(step.wallS), cpuS: sig(step.cpuS) },
    optimizer: { wallS: sig(optimizerTiming.wallS), cpuS: sig(optimizerTiming.cpuS) },
    weights: { wallS: sig(onePass.wallS * passes), cpuS: sig(onePass.cpuS * passes) },
    tokensPerS: sig(tokens / step.wallS),
    tokensPerCpuS: sig(tokens / step.cpuS),
    flops,
    gflopsWall: sig(flops.total / step.wallS / 1e9),
    gflopsCpu: sig(flops.total / step.cpuS / 1e9),
    rssAfterBuildMiB: sig(rssAfterBuild),
    peakRssMiB: sig(peakRss),
    heapMiB: sigOrNull(wasmHeapMiB()),
    tensorsBefore,
    tensorsAfter,
  };
}
