/**
 * The native matrix kernels, on OpenBLAS and on onnxruntime's MLAS, against a float64 product
 * computed here in plain JavaScript, and against the stock wasm kernel, on every shape class the
 * model uses.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openBlas } from '../../src/backend/blas.js';
import { initBackend, useNativeKernels, useStockKernels } from '../../src/backend/index.js';
import { lcgValues } from '../helpers/lcg-values.js';
import { HAS_BINDING } from '../helpers/native-binding.js';

/** `a x b` in float64 with numpy broadcasting of the batch dims, tfjs's transpose flags. */
function reference(
  a: tf.Tensor,
  b: tf.Tensor,
  ta: boolean,
  tb: boolean,
): { shape: number[]; data: Float64Array } {
  const av = a.dataSync();
  const bv = b.dataSync();
  const [ra, rb] = [a.rank, b.rank];
  const m = a.shape[ta ? ra - 1 : ra - 2] as number;
  const k = a.shape[ta ? ra - 2 : ra - 1] as number;
  const n = b.shape[tb ? rb - 2 : rb - 1] as number;
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const pad = (s: number[]) => [...Array(rank - s.length).fill(1), ...s] as number[];
  const [pa, pb] = [pad(batchA), pad(batchB)];
  const batch = pa.map((d, i) => Math.max(d, pb[i] as number));
  const total = batch.reduce((x, y) => x * y, 1);
  const data = new Float64Array(total * m * n);
  const flat = (idx: number[], dims: number[]) =>
    idx.reduce((acc, v, i) => acc * (dims[i] as number) + (dims[i] === 1 ? 0 : v), 0);
  for (let t = 0; t < total; t++) {
    const idx: number[] = [];
    let r = t;
    for (let i = rank - 1; i >= 0; i--) {
      idx[i] = r % (batch[i] as number);
      r = Math.floor(r / (batch[i] as number));
    }
    const oa = flat(idx, pa) * m * k;
    const ob = flat(idx, pb) * k * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const x = av[oa + (ta ? p * m + i : i * k + p)] as number;
          const y = bv[ob + (tb ? j * k + p : p * n + j)] as number;
          sum += x * y;
        }
        data[t * m * n + i * n + j] = sum;
      }
  }
  return { shape: [...batch, m, n], data };
}

interface Case {
  name: string;
  a: number[];
  b: number[];
  ta?: boolean;
  tb?: boolean;
}

/** `out` has the reference's shape and values to 4e-6 per term summed; returns its values. */
function expectReference(
  out: tf.Tensor,
  ref: { shape: number[]; data: Float64Array },
  c: Case,
): Float32Array {
  expect(out.shape).toEqual(ref.shape);
  const got = out.dataSync() as Float32Array;
  const k = c.ta ? (c.a.at(-2) as number) : (c.a.at(-1) as number);
  let err = 0;
  for (let j = 0; j < got.length; j++)
    err = Math.max(err, Math.abs((got[j] as number) - (ref.data[j] as number)));
  expect(err).toBeLessThan(1e-6 * k * 4);
  return got;
}

const CASES: Case[] = [
  { name: '2-D odd sizes', a: [37, 129], b: [129, 41] },
  { name: '2-D a transposed', a: [129, 37], b: [129, 41], ta: true },
  { name: '2-D b transposed', a: [37, 129], b: [41, 129], tb: true },
  { name: '2-D both transposed', a: [129, 37], b: [41, 129], ta: true, tb: true },
  { name: '2-D below the size threshold', a: [3, 5], b: [5, 7] },
  { name: '3-D batched', a: [3, 33, 65], b: [3, 65, 31] },
  { name: '3-D batched, b transposed (attention scores)', a: [4, 47, 16], b: [4, 47, 16], tb: true },
  { name: '3-D batched, a transposed (a gradient)', a: [4, 47, 16], b: [4, 47, 23], ta: true },
  { name: '3-D x 2-D broadcast', a: [5, 19, 64], b: [64, 50] },
  { name: 'GQA: 4-D heads x shared kv heads', a: [2, 4, 17, 32], b: [2, 1, 32, 17] },
  { name: 'GQA, transposed kv', a: [2, 2, 3, 17, 32], b: [2, 2, 1, 17, 32], tb: true },
];

const NATIVE = process.env.MFT_NATIVE_KERNELS !== '0';

type Gemm = 'openblas' | 'onnxruntime';
const LIBRARIES: { gemm: Gemm; available: boolean; detail: RegExp }[] = [
  { gemm: 'openblas', available: HAS_BINDING, detail: /on OpenBLAS \(/ },
  { gemm: 'onnxruntime', available: NATIVE, detail: /on onnxruntime-node \d+\.\d+\.\d+/ },
];

/** Whether the stock kernel takes the case: it flattens batch dims, so only plain batches. */
const plainBatch = (c: Case) =>
  c.a.length === c.b.length && (c.a.length === 2 || (c.a.length === 3 && c.a[0] === c.b[0]));

describe.each(LIBRARIES)('native wasm matrix kernels on $gemm', ({ gemm, available, detail }) => {
  const tensors = CASES.map(
    (c, i) =>
      [
        tf.tensor(lcgValues(tf.util.sizeFromShape(c.a), 2 * i + 1), c.a),
        tf.tensor(lcgValues(tf.util.sizeFromShape(c.b), 2 * i + 2), c.b),
      ] as const,
  );
  const run = (i: number) => {
    const c = CASES[i] as Case;
    const [a, b] = tensors[i] as readonly [tf.Tensor, tf.Tensor];
    return tf.tidy(() => tf.matMul(a, b, c.ta, c.tb));
  };
  let stock: (Float32Array | undefined)[] = [];

  beforeAll(async () => {
    await initBackend('wasm');
    useStockKernels();
    // The stock kernel flattens batch dims, so it is only compared where batches are plain.
    stock = CASES.map((c, i) => (plainBatch(c) ? (run(i).dataSync() as Float32Array) : undefined));
  });
  afterAll(() => {
    useNativeKernels();
    for (const [a, b] of tensors) tf.dispose([a, b]);
  });

  test.skipIf(!available)('loads the library and registers BatchMatMul and _FusedMatMul on it', () => {
    const status = useNativeKernels({ minMacs: 0, gemm });
    expect(status.active).toBe(true);
    expect(status.gemm).toBe(gemm);
    expect(status.detail).toMatch(detail);
  });

  // With MFT_NATIVE_KERNELS=0 (or without the library) the stock kernel runs, on the cases it takes.
  test.each(
    CASES.map((c, i) => [c.name, i] as const).filter(([, i]) => available || plainBatch(CASES[i] as Case)),
  )('%s: native = float64 reference (and stock)', (_name, i) => {
    if (available) useNativeKernels({ minMacs: i === 4 ? 1 : 0, gemm });
    const c = CASES[i] as Case;
    const [a, b] = tensors[i] as readonly [tf.Tensor, tf.Tensor];
    const ref = reference(a, b, Boolean(c.ta), Boolean(c.tb));
    const out = run(i);
    const got = expectReference(out, ref, c);
    const s = stock[i];
    const k = c.ta ? (c.a.at(-2) as number) : (c.a.at(-1) as number);
    if (s)
      for (let j = 0; j < got.length; j++)
        expect(Math.abs((got[j] as number) - (s[j] as number))).toBeLessThan(1e-5 * k);
    out.dispose();
  });

  test('fused matMul: plain product natively; bias and relu on the stock epilogue', () => {
    if (available) useNativeKernels({ minMacs: 0, gemm });
    const [a, b] = tensors[0] as readonly [tf.Tensor2D, tf.Tensor2D];
    const bias = tf.tensor1d(lcgValues(41, 99));
    const plain = tf.fused.matMul({ a, b });
    const withBias = tf.fused.matMul({ a, b, bias, activation: 'relu' });
    const expected = tf.tidy(() => tf.relu(tf.add(tf.matMul(a, b), bias)));
    expect(Math.max(...tf.tidy(() => tf.abs(tf.sub(withBias, expected))).dataSync())).toBeLessThan(1e-5);
    const ref = reference(a, b, false, false).data;
    const got = plain.dataSync();
    for (let j = 0; j < got.length; j++)
      expect(Math.abs((got[j] as number) - (ref[j] as number))).toBeLessThan(1e-4);
    tf.dispose([bias, plain, withBias, expected]);
  });

  test('no tensors leak through the native kernel', () => {
    if (available) useNativeKernels({ minMacs: 0, gemm });
    const before = tf.memory().numTensors;
    for (let r = 0; r < 20; r++) run(5).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('OpenBLAS products cut across threads', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(() => {
    useNativeKernels();
  });

  // From 2^22 multiply-adds the binding cuts a product across threads: by batch, rows or columns.
  const SPLIT_CASES: Case[] = [
    { name: 'rows', a: [300, 129], b: [129, 113] },
    { name: 'rows, a transposed', a: [129, 300], b: [129, 113], ta: true },
    { name: 'columns, b transposed', a: [40, 257], b: [411, 257], tb: true },
    { name: 'columns', a: [40, 257], b: [257, 411] },
    { name: 'batches', a: [4, 101, 128], b: [4, 128, 110] },
  ];
  test.skipIf(!HAS_BINDING).each(SPLIT_CASES.map((c) => [c.name, c] as const))(
    'a product cut in 3 parts by %s = float64 reference',
    (_name, c) => {
      useNativeKernels({ minMacs: 0, gemm: 'openblas' });
      const blas = openBlas();
      const threads = blas.threads();
      blas.threads(3);
      try {
        const a = tf.tensor(lcgValues(tf.util.sizeFromShape(c.a), 7), c.a);
        const b = tf.tensor(lcgValues(tf.util.sizeFromShape(c.b), 8), c.b);
        const ref = reference(a, b, Boolean(c.ta), Boolean(c.tb));
        const out = tf.matMul(a, b, c.ta, c.tb);
        expectReference(out, ref, c);
        tf.dispose([a, b, out]);
      } finally {
        blas.threads(threads);
      }
    },
  );
});
