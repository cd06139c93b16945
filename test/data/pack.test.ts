import { describe, expect, test } from 'vitest';
import { packBestFitDecreasing } from '../../src/data/pack.js';
import { Rng } from '../../src/util/index.js';

/** Best-fit decreasing written plainly (linear scan over the rows): the fills it reaches. */
function referenceFills(lengths: number[], capacity: number): number[] {
  const fills: number[] = [];
  for (const len of [...lengths].sort((a, b) => b - a)) {
    let best = -1;
    for (let r = 0; r < fills.length; r++) {
      const room = capacity - fills[r]!;
      if (room >= len && (best < 0 || room < capacity - fills[best]!)) best = r;
    }
    if (best < 0) fills.push(len);
    else fills[best]! += len;
  }
  return fills.sort((a, b) => a - b);
}

function randomLengths(n: number, max: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => 1 + rng.int(max));
}

describe('packBestFitDecreasing', () => {
  test('the documented example', () => {
    expect(packBestFitDecreasing([6, 3, 4, 2], 8, 0)).toEqual([
      [0, 3],
      [2, 1],
    ]);
  });

  test('every sample lands in exactly one row and no row overflows', () => {
    const lengths = randomLengths(2000, 300, 1);
    const rows = packBestFitDecreasing(lengths, 256 + 44, 5);
    const seen = rows.flat().sort((a, b) => a - b);
    expect(seen).toEqual(lengths.map((_, i) => i));
    for (const row of rows) expect(row.reduce((s, i) => s + lengths[i]!, 0)).toBeLessThanOrEqual(300);
  });

  test('reaches the same row fills as a plain best-fit-decreasing', () => {
    for (const seed of [1, 2, 3]) {
      const lengths = randomLengths(500, 120, seed);
      const rows = packBestFitDecreasing(lengths, 128, seed);
      const fills = rows.map((r) => r.reduce((s, i) => s + lengths[i]!, 0)).sort((a, b) => a - b);
      expect(fills).toEqual(referenceFills(lengths, 128));
    }
  });

  test('same seed, same rows; equal lengths are ordered by the seed', () => {
    const lengths = Array.from({ length: 60 }, (_, i) => 1 + (i % 5));
    expect(packBestFitDecreasing(lengths, 16, 7)).toEqual(packBestFitDecreasing(lengths, 16, 7));
    expect(packBestFitDecreasing(lengths, 16, 8)).not.toEqual(packBestFitDecreasing(lengths, 16, 7));
  });

  test('packs many small samples densely and 100k samples quickly', () => {
    const lengths = randomLengths(100_000, 200, 9);
    const t0 = performance.now();
    const rows = packBestFitDecreasing(lengths, 1024, 1);
    expect(performance.now() - t0).toBeLessThan(5000);
    const total = lengths.reduce((a, b) => a + b, 0);
    expect(total / (rows.length * 1024)).toBeGreaterThan(0.99);
  });

  test('a sample longer than a row is a bug in the caller', () => {
    expect(() => packBestFitDecreasing([5, 9], 8, 0)).toThrow(/sample 1 has length 9, outside 1..8/);
  });
});
