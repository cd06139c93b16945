import { describe, expect, test } from 'vitest';
import {
  labelAt,
  sampleAt,
  sampleTrainedTargets,
  storeSize,
  TokenStoreBuilder,
} from '../../src/data/token-store.js';
import type { TokenizedSample } from '../../src/data/types.js';

const M = -100;
const sample = (ids: number[], labels: number[]): TokenizedSample => ({
  ids: Int32Array.from(ids),
  labels: Int32Array.from(labels),
});
const plain = (ids: number[]) => sample(ids, ids);

/** Build a store from `samples` and check every sample reads back exactly as pushed. */
function roundTrip(samples: TokenizedSample[]) {
  const b = new TokenStoreBuilder();
  samples.forEach((s, i) => {
    expect(b.push(s)).toBe(i);
  });
  const store = b.finish();
  expect(storeSize(store)).toBe(samples.length);
  samples.forEach((s, i) => {
    const back = sampleAt(store, i);
    expect(Array.from(back.ids)).toEqual(Array.from(s.ids));
    expect(Array.from(back.labels)).toEqual(Array.from(s.labels));
  });
  return store;
}

describe('TokenStoreBuilder', () => {
  test('recipe samples (ids < 65536, labels = id or -100) take 3 bytes per token', () => {
    const store = roundTrip([plain([1, 65535, 7]), sample([1, 2, 3, 4], [M, M, 3, 4]), plain([0])]);
    expect(store.ids).toBeInstanceOf(Uint16Array);
    expect(store.labels).toBeInstanceOf(Uint8Array);
    expect(store.ids.byteLength + store.labels.byteLength).toBe(3 * 8);
    expect(Array.from({ length: 8 }, (_, i) => labelAt(store, i))).toEqual([1, 65535, 7, M, M, 3, 4, 0]);
    // Targets 1..L-1 that carry loss: 2 of [65535, 7]; 2 of [2(M), 3, 4]; none of a 1-token sample.
    expect([0, 1, 2].map((s) => sampleTrainedTargets(store, s))).toEqual([2, 2, 0]);
  });

  test('an id over 65535 widens the ids to 32 bits, keeping the samples before it', () => {
    const store = roundTrip([plain([5, 65535]), sample([151643, 3], [M, 3]), plain([9])]);
    expect(store.ids).toBeInstanceOf(Int32Array);
    expect(store.labels).toBeInstanceOf(Uint8Array);
  });

  test('labels of their own (pre-tokenized records) widen the labels, keeping the mask before them', () => {
    const store = roundTrip([
      sample([1, 2, 3], [M, 2, 3]),
      sample([4, 5, 6], [5, 6, M]), // shifted by the user: not a mask
      sample([7, 8], [M, 8]),
    ]);
    expect(store.labels).toBeInstanceOf(Int32Array);
    expect(store.ids).toBeInstanceOf(Uint16Array);
    expect([0, 1, 2].map((s) => sampleTrainedTargets(store, s))).toEqual([2, 1, 1]);
  });

  test('many samples across capacity growth read back exactly', () => {
    const samples = Array.from({ length: 3000 }, (_, i) =>
      sample(
        Array.from({ length: 40 }, (_, t) => (i * 41 + t) % 65536),
        Array.from({ length: 40 }, (_, t) => (t % 3 === 0 ? M : (i * 41 + t) % 65536)),
      ),
    );
    const store = roundTrip(samples);
    expect(store.ids.length).toBe(3000 * 40);
  });
});
