/**
 * 1) The backend's matmul rate: large square fp32 products, the best of which is the practical
 * ceiling MFU is measured against. Also the layouts the model actually issues, because on wasm only a plain 2-D product
 * reaches the fast kernel (XNNPACK): a transposed operand or a batch dimension takes a slow path.
 */
import * as tf from '@tensorflow/tfjs';
import { sig, since } from '../lib/measure.js';

export interface MatmulJob {
  kind: 'matmul';
  /** Square sizes n of n x n @ n x n; the best of them is the ceiling. */
  sizes: number[];
  /** Seconds to keep repeating each product. */
  seconds: number;
}

export interface MatmulRate {
  label: string;
  /** Shapes as `a @ b`. */
  shapes: string;
  flops: number;
  reps: number;
  gflopsWall: number;
  gflopsCpu: number;
}

export interface MatmulResult {
  kind: 'matmul';
  /** The best rate of the square products (wall clock). */
  peakGflopsWall: number;
  /** The best rate per CPU second (independent of how busy the machine was). */
  peakGflopsCpu: number;
  square: MatmulRate[];
  /** The same work in the layouts the model uses (transposed operand, batched). */
  layouts: MatmulRate[];
}

/** Repeat `f` (which returns a tensor) for `seconds` (at least twice, after one warm-up). */
async function rate(
  label: string,
  shapes: string,
  flops: number,
  seconds: number,
  f: () => tf.Tensor,
): Promise<MatmulRate> {
  const warm = f();
  await warm.data();
  warm.dispose();
  const start = performance.now();
  const cpu = process.cpuUsage();
  let reps = 0;
  while (reps < 2 || performance.now() - start < seconds * 1000) {
    const out = f();
    await out.data(); // wait for the result (a GPU backend queues the work; dataSync throws on webgpu in Node)
    out.dispose();
    reps++;
  }
  const t = since(start, cpu);
  return {
    label,
    shapes,
    flops,
    reps,
    gflopsWall: sig((flops * reps) / t.wallS / 1e9),
    gflopsCpu: sig((flops * reps) / t.cpuS / 1e9),
  };
}

/** Measure the square products and the model's layouts at the largest size that fits. */
export async function runMatmul(job: MatmulJob): Promise<MatmulResult> {
  const square: MatmulRate[] = [];
  for (const n of job.sizes) {
    const [a, b] = [tf.randomUniform([n, n]), tf.randomUniform([n, n])];
    square.push(
      await rate(`square ${n}`, `[${n},${n}] @ [${n},${n}]`, 2 * n ** 3, job.seconds, () => tf.matMul(a, b)),
    );
    tf.dispose([a, b]);
  }
  // the best square product is the practical ceiling (the largest can fall out of cache)
  const peakWall = Math.max(...square.map((x) => x.gflopsWall));
  const peakCpu = Math.max(...square.map((x) => x.gflopsCpu));

  // A projection of the benchmark model ([B*T, hidden] @ [hidden, out]) and an attention product.
  const n = Math.min(...job.sizes, 1024);
  const k = n / 2;
  const x = tf.randomUniform([n, k]);
  const w = tf.randomUniform([k, n]);
  const wT = tf.randomUniform([n, k]);
  const heads = 8;
  const q = tf.randomUniform([heads, n / 4, 64]);
  const kk = tf.randomUniform([heads, n / 4, 64]);
  const flops = 2 * n * k * n;
  const attnFlops = 2 * heads * (n / 4) * (n / 4) * 64;
  const layouts = [
    await rate('x @ W (plain)', `[${n},${k}] @ [${k},${n}]`, flops, job.seconds / 2, () => tf.matMul(x, w)),
    await rate('x @ W^T (transposeB)', `[${n},${k}] @ [${n},${k}]^T`, flops, job.seconds / 2, () =>
      tf.matMul(x, wT, false, true),
    ),
    await rate('transpose(W) then plain', `[${n},${k}] @ T([${n},${k}])`, flops, job.seconds / 2, () =>
      tf.tidy(() => tf.matMul(x, tf.transpose(wT))),
    ),
    await rate(
      'batched Q K^T',
      `[${heads},${n / 4},64] @ [${heads},${n / 4},64]^T`,
      attnFlops,
      job.seconds / 2,
      () => tf.matMul(q, kk, false, true),
    ),
  ];
  tf.dispose([x, w, wT, q, kk]);
  return {
    kind: 'matmul',
    peakGflopsWall: peakWall,
    peakGflopsCpu: peakCpu,
    square,
    layouts,
  };
}
