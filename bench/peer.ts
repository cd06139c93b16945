/**
 * `npm run bench -- --peer [--runs N] [--quick] [--shape main|bench] [--workers 1,2]`: mft's LoRA training step
 * (on 1 and N worker threads, N = the cores, or the counts given) against PyTorch's at the
 * two shapes of bench/peer/README.md, alternating mft and PyTorch runs in one process so that load
 * from other jobs on the machine falls on both. Prints tokens/s, the ratio, MFU against the
 * machine's all-core GEMM peak measured here (a 1024^3 product on mft's product library) and peak RSS;
 * writes bench/results/<date>-peer.json. Without torch it says "peer skipped" and times mft alone.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeKernelStatus, shareNativeThreads } from '../src/backend/index.js';
import { LINEAR_NAMES } from '../src/model/index.js';
import { estimateTrainingMemory, WASM_HEAP_BYTES } from '../src/train/index.js';
import { writeFileAtomic } from '../src/util/index.js';
import type { JobOutcome, WorkerTask } from './jobs.js';
import { formatJson } from './lib/json.js';
import { machine, versions } from './lib/machine.js';
import { sig } from './lib/measure.js';
import { type LlamaShape, randomLlamaSpec } from './lib/random-llama.js';
import { BENCH_MODEL } from './plan.js';
import type { TrainStepJob, TrainStepResult } from './sections/train-step.js';

interface PeerShape {
  name: 'main' | 'bench';
  model: LlamaShape;
  batchSize: number;
  seqLen: number;
  r: number;
}

const SHAPES: PeerShape[] = [
  {
    name: 'main',
    model: {
      vocab_size: 512,
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      max_position_embeddings: 512,
    },
    batchSize: 16,
    seqLen: 128,
    r: 8,
  },
  {
    name: 'bench',
    model: { ...BENCH_MODEL, max_position_embeddings: 256 },
    batchSize: 4,
    seqLen: 256,
    r: 16,
  },
];

/**
 * Both sides time the same steps: the median of TIMED_STEPS after WARMUP_STEPS untimed ones (the
 * first steps of either pay for warming up: JIT, allocator, the BLAS's buffers).
 */
const WARMUP_STEPS = 3;
const TIMED_STEPS = 11;

const HERE = fileURLToPath(new URL('.', import.meta.url));
const PEER_DIR = join(HERE, 'peer');
const RESULTS = join(HERE, 'results');

interface TorchResult {
  threads: number;
  blas: string;
  tokPerS: number;
  peakRssMiB: number;
  loss: number;
}

/** The first Python that imports torch: the one on PATH, else Debian's (where apt installs torch). */
function torchPython(): string | undefined {
  return ['python3', '/usr/bin/python3'].find(
    (py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0,
  );
}

function runTorch(
  python: string,
  shape: PeerShape,
  threads: number,
  warmup: number,
  steps: number,
): TorchResult {
  // Debian's torch runs its products on the pthread OpenBLAS, which set_num_threads does not limit:
  // its own variable does, so "1 thread" is one thread.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OMP_WAIT_POLICY: 'PASSIVE',
    OPENBLAS_NUM_THREADS: String(threads),
  };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const args = [
    join(PEER_DIR, 'torch_lora_step.py'),
    PEER_DIR,
    shape.name,
    String(threads),
    String(warmup),
    String(steps),
  ];
  const r = spawnSync(python, args, { encoding: 'utf8', env });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line)
    throw new Error(`torch_lora_step.py failed: ${r.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(line.slice('RESULT '.length)) as TorchResult;
}

/**
 * Whether mft needs gradient checkpointing for this shape on `workers` workers, as `mft train`'s
 * memory check decides it: when one worker's rows on one tape would not fit in the wasm heap
 * (4 GiB) by the training memory estimate.
 */
function needsCheckpointing(shape: PeerShape, workers: number): boolean {
  const oneTape = estimateTrainingMemory(randomLlamaSpec(shape.model), 0, {
    micro_batch_size: Math.ceil(shape.batchSize / workers),
    sequence_len: shape.seqLen,
    lora_r: shape.r,
    targets: LINEAR_NAMES,
    gradient_checkpointing: false,
  });
  return oneTape.tensors > WASM_HEAP_BYTES;
}

/** One mft step measurement in a process of its own (bench/worker.ts), for its own peak RSS. */
function runMft(shape: PeerShape, workers: number, warmup: number, runs: number): TrainStepResult {
  const job: TrainStepJob = {
    workers,
    kind: 'train-step',
    model: shape.model,
    storage: 'fp32',
    checkpointing: needsCheckpointing(shape, workers),
    batchSize: shape.batchSize,
    seqLen: shape.seqLen,
    r: shape.r,
    warmup,
    runs,
  };
  const dir = mkdtempSync(join(tmpdir(), 'mft-peer-'));
  try {
    const task: WorkerTask = { backend: 'wasm', jobs: [job] };
    writeFileSync(join(dir, 'task.json'), JSON.stringify(task));
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(HERE, 'worker.ts'), join(dir, 'task.json'), join(dir, 'out.json')],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    if (r.status !== 0) throw new Error(`bench worker exited ${r.status}`);
    const [outcome] = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as JobOutcome[];
    if (!outcome?.ok) throw new Error(outcome ? outcome.error : 'no result');
    const result = outcome.result as TrainStepResult;
    if (!result.fits) throw new Error('the mft step ran out of memory');
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** GFLOP/s of the best of ten 1024^3 float32 products through the registered kernel. */
function gemmGflops(): number {
  const n = 1024;
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  // OpenBLAS needs a few products after a change of its thread count before it runs at speed.
  for (let i = 0; i < 4; i++) tf.matMul(a, b).dispose();
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    tf.matMul(a, b).dispose();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / best / 1e9;
}

/**
 * The machine's GEMM peak on the library mft's products run on: one thread and all cores
 * (OpenBLAS's threads; onnxruntime's products are single-threaded, so its all-core figure is
 * one thread's times the cores).
 */
async function gemmPeak(
  cores: number,
): Promise<{ oneThread: number; allCores: number; measuredAllCores: boolean }> {
  await initBackend('wasm');
  const status = nativeKernelStatus();
  if (!status?.active) return { oneThread: Number.NaN, allCores: Number.NaN, measuredAllCores: false };
  if (status.gemm !== 'openblas') {
    const one = gemmGflops();
    return { oneThread: one, allCores: one * cores, measuredAllCores: false };
  }
  // All cores first, on the thread count OpenBLAS starts with; then one thread (cores / cores).
  shareNativeThreads(1);
  const allCores = gemmGflops();
  shareNativeThreads(cores);
  const oneThread = gemmGflops();
  shareNativeThreads(1);
  return { oneThread, allCores, measuredAllCores: true };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export async function runPeer(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const runsAt = argv.indexOf('--runs');
  const rounds = runsAt >= 0 ? Number(argv[runsAt + 1]) : quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write('bench: --runs needs a positive integer\n');
    return 2;
  }
  const shapeAt = argv.indexOf('--shape');
  const only = shapeAt >= 0 ? argv[shapeAt + 1] : undefined;
  const shapes = SHAPES.filter((s) => only === undefined || s.name === only);
  if (shapes.length === 0) {
    process.stderr.write('bench: --shape is main or bench\n');
    return 2;
  }
  const workersAt = argv.indexOf('--workers');
  const cores = availableParallelism();
  const workerCounts =
    workersAt >= 0 ? (argv[workersAt + 1] ?? '').split(',').map(Number) : cores > 1 ? [1, cores] : [1];
  if (workerCounts.some((n) => !Number.isInteger(n) || n < 1)) {
    process.stderr.write('bench: --workers needs a list of positive integers, e.g. 1,2\n');
    return 2;
  }
  const steps = quick ? 3 : TIMED_STEPS;
  const load: number[][] = [];
  const gemm = await gemmPeak(cores);
  const peak = gemm.allCores;
  const kernels = nativeKernelStatus()?.detail ?? 'stock';
  const python = torchPython();
  const withTorch = python !== undefined;
  if (!withTorch)
    process.stdout.write('peer skipped: python3 with torch is not installed (see bench/peer/README.md)\n');
  const threads = [1, 2];
  const rows = [];
  for (const shape of shapes) {
    const mft = new Map<number, TrainStepResult[]>(workerCounts.map((w) => [w, []]));
    const torch = new Map<number, TorchResult[]>(threads.map((t) => [t, []]));
    for (let round = 0; round < rounds; round++) {
      process.stderr.write(`peer: ${shape.name} round ${round + 1}/${rounds}\n`);
      load.push(loadavg().map((x) => sig(x, 3)));
      for (const w of workerCounts) mft.get(w)?.push(runMft(shape, w, WARMUP_STEPS, steps));
      if (python)
        for (const t of threads) torch.get(t)?.push(runTorch(python, shape, t, WARMUP_STEPS, steps));
    }
    // The model's FLOPs, without checkpointing's recompute: the same work for every column.
    const first = mft.get(workerCounts[0]!)![0]!;
    const flopsPerToken = (first.flops.total - first.flops.recompute) / (shape.batchSize * shape.seqLen);
    const peers = threads.map((t) => {
      const rs = torch.get(t) ?? [];
      const tok = rs.length ? median(rs.map((x) => x.tokPerS)) : Number.NaN;
      return {
        threads: t,
        tokensPerS: sig(tok),
        mfu: sig((tok * flopsPerToken) / 1e9 / peak),
        peakRssMiB: rs.length ? sig(Math.max(...rs.map((x) => x.peakRssMiB))) : null,
        blas: rs[0]?.blas ?? null,
        runs: rs.map((x) => sig(x.tokPerS)),
      };
    });
    const best = peers.reduce((p, q) => (q.tokensPerS > p.tokensPerS ? q : p));
    const mfts = workerCounts.map((w) => {
      const rs = mft.get(w) ?? [];
      const tok = median(rs.map((m) => m.tokensPerS));
      return {
        workers: w,
        checkpointing: needsCheckpointing(shape, w),
        tokensPerS: sig(tok),
        mfu: sig((tok * flopsPerToken) / 1e9 / peak),
        peakRssMiB: sig(Math.max(...rs.map((m) => m.peakRssMiB))),
        ratio: withTorch ? sig(tok / best.tokensPerS, 3) : null,
        runs: rs.map((m) => m.tokensPerS),
      };
    });
    const mftBest = mfts.reduce((p, q) => (q.tokensPerS > p.tokensPerS ? q : p));
    rows.push({
      shape: shape.name,
      batchSize: shape.batchSize,
      seqLen: shape.seqLen,
      r: shape.r,
      flopsPerToken: sig(flopsPerToken),
      mft: mfts,
      torch: withTorch ? peers : null,
      ratio: mftBest.ratio,
    });
  }
  const lines = [
    `GEMM peak (1024^3 fp32, mft's product library): ${gemm.oneThread.toFixed(1)} GFLOP/s on 1 thread, ${peak.toFixed(1)} on ${cores} cores${gemm.measuredAllCores ? '' : ' (1 thread x cores)'}; MFU is against the ${cores}-core figure`,
    `mft kernels: ${kernels}`,
    `alternating runs, medians; the CPU may be shared with other jobs (load average 1/5/15 min at each round: ${load.map((l) => l.join('/')).join(', ')})`,
    '| shape | mft workers | tok/s | MFU | peak RSS MiB | PyTorch 1 thread tok/s | 2 threads tok/s | MFU (best) | peak RSS MiB | mft / best PyTorch |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.flatMap((r) => {
      const p = r.torch;
      const best = p ? p.reduce((x, y) => (y.tokensPerS > x.tokensPerS ? y : x)) : null;
      const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
      return r.mft.map(
        (m) =>
          `| ${r.shape} ${r.batchSize} x ${r.seqLen}, r ${r.r} | ${m.workers}${m.checkpointing ? ' (checkpointing)' : ''} | ${m.tokensPerS} | ${pct(m.mfu)} | ${m.peakRssMiB} | ${p ? p[0]?.tokensPerS : 'skipped'} | ${p ? p[1]?.tokensPerS : 'skipped'} | ${best ? pct(best.mfu) : '-'} | ${best?.peakRssMiB ?? '-'} | ${m.ratio ?? '-'} |`,
      );
    }),
  ];
  const peerBlas = rows.find((r) => r.torch)?.torch;
  if (peerBlas)
    lines.push(`PyTorch BLAS: ${peerBlas.map((p) => `${p.threads} thread(s): ${p.blas}`).join('; ')}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const report = {
    schema: 'mft-bench-peer/4',
    date: new Date().toISOString(),
    machine: machine(),
    versions: versions(),
    gemmPeakGflops1Thread: sig(gemm.oneThread),
    gemmPeakGflopsAllCores: sig(peak),
    gemmPeakAllCoresMeasured: gemm.measuredAllCores,
    mftKernels: kernels,
    mfuDefinition:
      "training FLOPs (bench/lib/flops.ts, without checkpointing's recompute: the same work for every column) per second / the machine's all-core GEMM peak (every column may use every core: mft's one worker runs OpenBLAS on all of them)",
    rounds,
    loadAverage: load,
    peer: withTorch ? 'torch' : 'skipped',
    rows,
  };
  if (!quick) {
    const file = join(RESULTS, `${new Date().toISOString().slice(0, 10)}-peer.json`);
    writeFileAtomic(file, formatJson(report));
    process.stdout.write(`wrote ${file}\n`);
  }
  return 0;
}
