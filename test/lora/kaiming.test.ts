import { describe, expect, test } from 'vitest';
import { KAIMING_A, kaimingUniform, kaimingUniformBound } from '../../src/lora/kaiming.js';

describe('kaimingUniformBound', () => {
  test('a = sqrt(5) gives 1 / sqrt(fan_in), as torch.nn.Linear / PEFT lora_A', () => {
    // torch: gain = sqrt(2 / (1 + 5)) = 1/sqrt(3); bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in)
    for (const fanIn of [1, 7, 64, 4096]) {
      expect(kaimingUniformBound(fanIn)).toBeCloseTo(1 / Math.sqrt(fanIn), 12);
    }
    expect(KAIMING_A).toBeCloseTo(2.2360679775, 9);
  });

  test('a = 0 is He-uniform sqrt(6 / fan_in)', () => {
    expect(kaimingUniformBound(50, 0)).toBeCloseTo(Math.sqrt(6 / 50), 12);
  });

  test('rejects a non-positive fan_in', () => {
    expect(() => kaimingUniformBound(0)).toThrow(/fanIn.*kaimingUniformBound.*got 0/);
  });
});

describe('kaimingUniform', () => {
  test('values lie in (-1/sqrt(in), 1/sqrt(in)) with the moments of a uniform law', () => {
    const rows = 16;
    const fanIn = 256;
    const w = kaimingUniform(rows, fanIn, 1234);
    expect(w.length).toBe(rows * fanIn);
    const bound = 1 / 16;
    let sum = 0;
    let sumSq = 0;
    let max = 0;
    for (const v of w) {
      sum += v;
      sumSq += v * v;
      max = Math.max(max, Math.abs(v));
    }
    const n = w.length;
    expect(max).toBeLessThanOrEqual(bound);
    // a sample of 4096 reaches close to the edge of the interval
    expect(max).toBeGreaterThan(0.99 * bound);
    // U(-b, b): mean 0 (sd of the mean b/sqrt(3n)), variance b^2 / 3
    expect(Math.abs(sum / n)).toBeLessThan((4 * bound) / Math.sqrt(3 * n));
    expect(sumSq / n / ((bound * bound) / 3)).toBeGreaterThan(0.95);
    expect(sumSq / n / ((bound * bound) / 3)).toBeLessThan(1.05);
  });

  test('same seed gives the same matrix, another seed another one', () => {
    const a = kaimingUniform(4, 32, 7);
    expect(kaimingUniform(4, 32, 7)).toEqual(a);
    const b = kaimingUniform(4, 32, 8);
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
    expect(same).toBe(0);
  });
});
