/**
 * The llama-golden fixture (test/fixtures/llama-golden: a tiny Llama, a PEFT adapter and reference
 * outputs computed outside mft) and the error measure its tests compare with.
 */
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { Batch } from '../../src/model/batch.js';

/** Absolute path of the fixture folder (with a trailing slash). */
export const GOLDEN_DIR = fileURLToPath(new URL('../fixtures/llama-golden/', import.meta.url));

/** max |ours - ref| / max |ref| (the fixture's definition of relative error); lengths must match. */
export function relMaxErr(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(ours.length).toBe(ref.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - ref[i]!));
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
  }
  return maxDiff / maxRef;
}

/** A plain causal batch [B, T]: labels are the ids shifted left, the last position carries no loss (-100). */
export function causalBatch(ids: Int32Array, B: number, T: number): Batch {
  const labels = new Int32Array(B * T).fill(-100);
  const positionIds = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      positionIds[b * T + t] = t;
      if (t < T - 1) labels[b * T + t] = ids[b * T + t + 1]!;
    }
  }
  return { batchSize: B, seqLen: T, inputIds: ids, labels, segmentIds: new Int32Array(B * T), positionIds };
}
