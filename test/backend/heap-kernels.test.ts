/**
 * The wasm heap kernels (Slice, GatherV2, SplitV, Identity, Cast) and the native Transpose against the stock
 * wasm kernels and against index arithmetic done here, on odd shapes of every rank the model uses.
 * All of them move values without arithmetic, so they must agree bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend, useNativeKernels, useStockKernels } from '../../src/backend/index.js';
import { lcgValues } from '../helpers/lcg-values.js';

const NATIVE = process.env.MFT_NATIVE_KERNELS !== '0';

/** Row-major multi-index of flat position `i` in `shape`. */
function unflat(i: number, shape: readonly number[]): number[] {
  const idx: number[] = [];
  let r = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = r % (shape[d] as number);
    r = Math.floor(r / (shape[d] as number));
  }
  return idx;
}
const flat = (idx: readonly number[], shape: readonly number[]) =>
  idx.reduce((acc, v, d) => acc * (shape[d] as number) + v, 0);

function referenceSlice(x: Float32Array, shape: number[], begin: number[], size: number[]): Float32Array {
  const out = new Float32Array(tf.util.sizeFromShape(size));
  for (let i = 0; i < out.length; i++) {
    const idx = unflat(i, size).map((v, d) => v + (begin[d] as number));
    out[i] = x[flat(idx, shape)] as number;
  }
  return out;
}

function referenceTranspose(x: Float32Array, shape: number[], perm: number[]): Float32Array {
  const outShape = perm.map((p) => shape[p] as number);
  const out = new Float32Array(x.length);
  for (let i = 0; i < out.length; i++) {
    const o = unflat(i, outShape);
    const idx: number[] = [];
    perm.forEach((p, d) => {
      idx[p] = o[d] as number;
    });
    out[i] = x[flat(idx, shape)] as number;
  }
  return out;
}

const SLICES: { shape: number[]; begin: number[]; size: number[] }[] = [
  { shape: [37], begin: [5], size: [19] },
  { shape: [33, 17], begin: [3, 0], size: [11, 17] }, // whole rows: one contiguous run
  { shape: [33, 17], begin: [2, 5], size: [30, 9] },
  { shape: [5, 7, 33], begin: [1, 2, 3], size: [3, 4, 29] },
  { shape: [3, 5, 7, 9], begin: [0, 1, 0, 4], size: [3, 3, 7, 5] },
  { shape: [3, 5, 7, 9], begin: [1, 0, 0, 0], size: [2, 5, 7, 9] },
  { shape: [2, 3, 4, 5, 6], begin: [1, 0, 2, 1, 3], size: [1, 3, 2, 4, 3] },
];

const SPLITS: { shape: number[]; sizes: number[] | number; axis: number }[] = [
  { shape: [2, 3, 5, 8], sizes: 2, axis: 3 }, // rotate_half's halves
  { shape: [7, 45], sizes: [4, 0, 41], axis: 1 },
  { shape: [12, 31], sizes: 4, axis: 0 }, // planes of a product
  { shape: [3, 9, 11], sizes: [2, 7], axis: 1 },
];

const TRANSPOSES: { shape: number[]; perm: number[] }[] = [
  { shape: [129, 173], perm: [1, 0] },
  { shape: [3, 1, 41], perm: [2, 1, 0] },
  { shape: [5, 33, 19], perm: [0, 2, 1] },
  { shape: [3, 17, 5, 8], perm: [0, 2, 1, 3] }, // heads
  { shape: [2, 3, 5, 7], perm: [3, 1, 0, 2] },
  { shape: [2, 3, 4], perm: [1, 2, 0] }, // merges to a 2-D transpose
  { shape: [1, 37, 1, 45], perm: [3, 2, 1, 0] },
  { shape: [2, 3, 4, 5, 6], perm: [0, 3, 4, 1, 2] },
  // from 65536 elements the binding cuts the work across threads
  { shape: [300, 257], perm: [1, 0] },
  { shape: [4, 130, 6, 40], perm: [0, 2, 1, 3] },
  { shape: [3, 70, 33, 11], perm: [2, 0, 3, 1] },
];

const GATHERS: { shape: number[]; indices: number[]; indexShape: number[]; dtype: 'float32' | 'int32' }[] = [
  // embedding rows
  {
    shape: [512, 64],
    indices: Array.from({ length: 1008 }, (_, i) => (i * 37) % 512),
    indexShape: [1008],
    dtype: 'float32',
  },
  { shape: [7], indices: [6, 0, 3, 3, 1, 2], indexShape: [3, 2], dtype: 'float32' },
  { shape: [5, 3, 4], indices: [4, 0, 2, 2], indexShape: [2, 2], dtype: 'int32' },
];

/** Rows `indices` of x (axis 0), by index arithmetic. */
function referenceGather(x: Float32Array, shape: number[], indices: number[]): Float32Array {
  const width = x.length / (shape[0] as number);
  const out = new Float32Array(indices.length * width);
  indices.forEach((r, i) => {
    for (let j = 0; j < width; j++) out[i * width + j] = x[r * width + j] as number;
  });
  return out;
}

const gatherInput = (c: (typeof GATHERS)[number], i: number) => {
  const values = lcgValues(tf.util.sizeFromShape(c.shape), 200 + i);
  return c.dtype === 'int32' ? Float32Array.from(values, (v) => Math.round(v * 100)) : values;
};

describe('wasm heap kernels and native transpose', () => {
  const stockOut: Float32Array[][] = [];
  const runAll = (): Float32Array[][] => [
    ...SLICES.map((c, i) => {
      const x = tf.tensor(lcgValues(tf.util.sizeFromShape(c.shape), i + 1), c.shape);
      const y = tf.slice(x, c.begin, c.size);
      const out = [y.dataSync() as Float32Array];
      tf.dispose([x, y]);
      return out;
    }),
    ...SPLITS.map((c, i) => {
      const x = tf.tensor(lcgValues(tf.util.sizeFromShape(c.shape), 50 + i), c.shape);
      const ys = tf.split(x, c.sizes, c.axis);
      const out = ys.map((y) => y.dataSync() as Float32Array);
      tf.dispose([x, ...ys]);
      return out;
    }),
    ...TRANSPOSES.map((c, i) => {
      const x = tf.tensor(lcgValues(tf.util.sizeFromShape(c.shape), 100 + i), c.shape);
      const y = tf.transpose(x, c.perm);
      const out = [y.dataSync() as Float32Array];
      tf.dispose([x, y]);
      return out;
    }),
    ...GATHERS.map((c, i) => {
      const x = tf.tensor(gatherInput(c, i), c.shape, c.dtype);
      const idx = tf.tensor(c.indices, c.indexShape, 'int32');
      const y = tf.gather(x, idx);
      expect(y.shape).toEqual([...c.indexShape, ...c.shape.slice(1)]);
      const out = [Float32Array.from(y.dataSync())];
      tf.dispose([x, idx, y]);
      return out;
    }),
  ];

  beforeAll(async () => {
    await initBackend('wasm');
    useStockKernels();
    stockOut.push(...runAll());
    useNativeKernels({ minMacs: 0, minTranspose: 0 });
  });
  afterAll(() => {
    useStockKernels();
    useNativeKernels();
  });

  test.skipIf(!NATIVE)('are registered, and say so', () => {
    const status = useNativeKernels({ minMacs: 0, minTranspose: 0 });
    expect(status.detail).toMatch(
      /Transpose (from \d+ elements, Exp and Softmax from \d+, row logsumexp and its gradient, dropout, SwiGLU, RMSNorm, softmax's gradient and AdamW on mft's binding|on onnxruntime-node)/,
    );
    expect(status.detail).toMatch(/Slice, GatherV2, SplitV, Identity, Cast read the wasm heap in place/);
  });

  test('slice, split, transpose and gather agree with the stock kernels and the index arithmetic bit for bit', () => {
    const got = runAll();
    expect(got).toEqual(stockOut);
    SLICES.forEach((c, i) => {
      const x = lcgValues(tf.util.sizeFromShape(c.shape), i + 1);
      expect(got[i]?.[0]).toEqual(referenceSlice(x, c.shape, c.begin, c.size));
    });
    TRANSPOSES.forEach((c, i) => {
      const x = lcgValues(tf.util.sizeFromShape(c.shape), 100 + i);
      expect(got[SLICES.length + SPLITS.length + i]?.[0]).toEqual(referenceTranspose(x, c.shape, c.perm));
    });
    GATHERS.forEach((c, i) => {
      const at = SLICES.length + SPLITS.length + TRANSPOSES.length + i;
      expect(got[at]?.[0]).toEqual(referenceGather(gatherInput(c, i), c.shape, c.indices));
    });
  });

  test('int32 and bool slices; split pieces of size 0', () => {
    const xi = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
    expect(tf.slice(xi, [0, 1], [2, 2]).arraySync()).toEqual([
      [2, 3],
      [5, 6],
    ]);
    const xb = tf.tensor1d([true, false, true, true], 'bool');
    expect(tf.slice(xb, [1], [2]).arraySync()).toEqual([0, 1]);
    const parts = tf.split(tf.tensor2d([1, 2, 3, 4], [2, 2]), [0, 2], 1);
    expect(parts.map((p) => p.shape)).toEqual([
      [2, 0],
      [2, 2],
    ]);
    tf.dispose([xi, xb, ...parts]);
  });

  test('identity and same-dtype cast share the buffer; a shared buffer outlives its first owner', () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor2d(lcgValues(35, 7), [5, 7]);
    const c = tf.clone(x);
    const same = tf.cast(x, 'float32');
    const asInt = tf.tidy(() => tf.cast(tf.mul(x, 10), 'int32'));
    x.dispose();
    expect(c.dataSync()).toEqual(lcgValues(35, 7));
    expect(same.dataSync()).toEqual(lcgValues(35, 7));
    expect([...asInt.dataSync()]).toEqual(
      [...lcgValues(35, 7)].map((v) => Math.trunc(Math.fround(v * 10)) | 0),
    );
    tf.dispose([c, same, asInt]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('gradients through clone, slice and transpose', () => {
    const x = tf.tensor3d(lcgValues(2 * 5 * 6, 9), [2, 5, 6]);
    const f = (t: tf.Tensor) =>
      tf.sum(tf.mul(tf.transpose(tf.slice(tf.clone(t), [0, 1, 2], [2, 3, 4]), [2, 0, 1]), 3));
    const g = tf.grad(f)(x);
    const expected = new Float32Array(60);
    for (let b = 0; b < 2; b++)
      for (let i = 1; i < 4; i++) for (let j = 2; j < 6; j++) expected[b * 30 + i * 6 + j] = 3;
    expect(g.dataSync()).toEqual(expected);
    tf.dispose([x, g]);
  });
});
