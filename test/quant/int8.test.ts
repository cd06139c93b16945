import { describe, expect, test } from 'vitest';
import { dequantizeInt8, quantizeInt8 } from '../../src/quant/int8.js';
import { randomNormal, refAbsmax, roundHalfAway } from './reference.js';

describe('int8 (absmax per block of 64)', () => {
  test('codes are round(127 v / absmax) in [-127, 127] and the error is at most absmax / 254', () => {
    const n = 64 * 100 + 17; // shorter last block
    const values = randomNormal(n, 11, 0.05);
    const q = quantizeInt8(values);
    const absmax = refAbsmax(values, 64);
    expect(Array.from(q.absmax)).toEqual(absmax);
    expect(q.codes.length).toBe(n);
    const back = dequantizeInt8(q);
    let ties = 0;
    for (let i = 0; i < n; i++) {
      const a = absmax[Math.floor(i / 64)]!;
      const x = (127 * values[i]!) / a;
      if (Math.abs(Math.abs(x % 1) - 0.5) < 1e-9) ties++;
      else expect(q.codes[i]).toBe(roundHalfAway(x));
      expect(Math.abs(q.codes[i]!)).toBeLessThanOrEqual(127);
      expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual((a / 254) * (1 + 1e-6));
    }
    expect(ties).toBe(0);
  });

  test('the largest magnitude of each block maps to +-127 and back to itself (to fp32 rounding)', () => {
    const values = randomNormal(64 * 8, 5, 1);
    const q = quantizeInt8(values);
    const back = dequantizeInt8(q);
    for (let b = 0; b < 8; b++) {
      const block = Array.from(values.subarray(b * 64, b * 64 + 64));
      const i = b * 64 + block.map(Math.abs).indexOf(Math.max(...block.map(Math.abs)));
      expect(q.codes[i]).toBe(values[i]! > 0 ? 127 : -127);
      expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(Math.abs(values[i]!) * 1e-6);
    }
  });

  test('symmetric: -v quantizes to minus the codes of v (halves round away from zero)', () => {
    // 127 * v / absmax lands on exact halves: 0.5, 1.5, 63.5.
    const values = Float32Array.from([127, 0.5, 1.5, 63.5, -0.5, 3]);
    const neg = values.map((v) => -v);
    const q = quantizeInt8(values);
    expect(Array.from(q.codes)).toEqual([127, 1, 2, 64, -1, 3]);
    expect(Array.from(quantizeInt8(neg).codes)).toEqual([-127, -1, -2, -64, 1, -3]);
  });

  test('an all-zero block dequantizes to 0, never NaN', () => {
    const values = randomNormal(64 * 2, 9, 1);
    values.fill(0, 0, 64);
    const q = quantizeInt8(values);
    expect(q.absmax[0]).toBe(0);
    const back = dequantizeInt8(q);
    expect(Array.from(back.subarray(0, 64)).every((v) => v === 0)).toBe(true);
    expect(back.some(Number.isNaN)).toBe(false);
  });

  test('checks its arguments', () => {
    const q = quantizeInt8(randomNormal(70, 1, 1));
    expect(() => dequantizeInt8(q, new Float32Array(69))).toThrow(/'out' passed to 'dequantizeInt8'/);
    expect(() => dequantizeInt8({ ...q, codes: new Int8Array(3) })).toThrow(/must hold 70 values, got 3/);
    expect(() => quantizeInt8(new Float32Array(4), 0)).toThrow(/'blockSize' passed to 'quantizeInt8'/);
  });
});
