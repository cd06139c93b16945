import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { initBackend, useNativeKernels, useStockKernels } from '../../src/backend/index.js';
import { HAS_BINDING } from './native-binding.js';

/**
 * Tests of a model op that runs as mft's fused `kernel` on wasm with the binding and as tfjs ops
 * elsewhere: `check(shape, i, tolerance)` on each shape both ways (the fused way only where the
 * binding is built), inside the caller's `describe`.
 * @param tolerances the relative bound `check` gets: the fused kernel's, and the tfjs ops'
 */
export function fusedAndOps(
  kernel: string,
  shapes: readonly number[][],
  check: (shape: number[], i: number, tolerance: number) => void,
  tolerances: { fused: number; ops: number } = { fused: 0, ops: 0 },
): void {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(() => {
    useNativeKernels();
  });
  const cases = shapes.map((s, i) => [s, i] as const);
  test.skipIf(!HAS_BINDING).each(cases)('fused kernel on %j = float64 formula', (shape, i) => {
    useNativeKernels();
    expect(tf.getKernel(kernel, 'wasm')).toBeDefined();
    check([...shape], i, tolerances.fused);
  });
  test.each(cases)('tfjs ops on %j = float64 formula', (shape, i) => {
    useStockKernels();
    expect(tf.getKernel(kernel, 'wasm')).toBeUndefined();
    check([...shape], i, tolerances.ops);
  });
}
