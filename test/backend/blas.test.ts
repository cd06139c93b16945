import { describe, expect, test } from 'vitest';
import { blasThreadsFor, checkBinding, mergedTranspose } from '../../src/backend/blas.js';

describe('mergedTranspose', () => {
  test.each([
    { shape: [4, 256, 8, 64], perm: [0, 2, 1, 3], dims: [4, 256, 8, 64], merged: [0, 2, 1, 3] },
    { shape: [2, 3, 4], perm: [1, 2, 0], dims: [2, 12], merged: [1, 0] },
    { shape: [1, 37, 1, 45], perm: [3, 2, 1, 0], dims: [37, 45], merged: [1, 0] },
    { shape: [2, 3, 4, 5, 6], perm: [0, 3, 4, 1, 2], dims: [2, 12, 30], merged: [0, 2, 1] },
    { shape: [5, 1, 7], perm: [1, 0, 2], dims: [35], merged: [0] }, // only a size-1 axis moves: a copy
  ])('$shape by $perm -> $dims by $merged', ({ shape, perm, dims, merged }) => {
    expect(mergedTranspose(shape, perm)).toEqual({ dims, perm: merged });
  });
});

describe('blasThreadsFor', () => {
  test('shares the cores among workers, at least one each', () => {
    const env = process.env.OPENBLAS_NUM_THREADS;
    delete process.env.OPENBLAS_NUM_THREADS;
    try {
      expect(blasThreadsFor(1, 8)).toBe(8);
      expect(blasThreadsFor(3, 8)).toBe(2);
      expect(blasThreadsFor(16, 8)).toBe(1);
    } finally {
      if (env !== undefined) process.env.OPENBLAS_NUM_THREADS = env;
    }
  });
});

describe('checkBinding', () => {
  test('a binding built from older sources is refused with what it lacks and the fix', () => {
    const fn = () => {};
    const names = ['open', 'threads', 'sgemm', 'transpose', 'exp', 'logSumExp', 'logSumExpGrad', 'softmax'];
    const more = ['swiglu', 'swigluGrad', 'adamw', 'rmsNorm', 'rmsNormGrad', 'dropout', 'softmaxGrad'];
    const whole = Object.fromEntries([...names, ...more].map((n) => [n, fn]));
    expect(checkBinding(whole)).toBe(whole);
    const { softmax: _s, rmsNorm: _r, ...old } = whole;
    expect(() => checkBinding(old)).toThrow(
      /out of date \(it has no softmax, rmsNorm; npm run build:native rebuilds it\)/,
    );
  });
});
