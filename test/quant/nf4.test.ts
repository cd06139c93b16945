import { describe, expect, test } from 'vitest';
import { dequantizeNf4, NF4_CODEBOOK, quantizeNf4 } from '../../src/quant/nf4.js';
import { NF4_HALF_MAX_GAP, NF4_REF, nibble, randomNormal, refAbsmax, refNearest } from './reference.js';

describe('NF4', () => {
  test('the codebook is bitsandbytes NF4, each level an exact float32', () => {
    expect(Array.from(NF4_CODEBOOK)).toEqual(NF4_REF);
    for (const c of NF4_REF) expect(Math.fround(c)).toBe(c);
  });

  test('every codebook value, at any scale, quantizes to its own code and back exactly', () => {
    // Scales are float32 numbers, as a stored absmax is.
    for (const scale of [1, 0.0173, 3.75, 1e-4].map(Math.fround)) {
      // 4 shuffled copies of the 16 levels fill one block of 64; the block's absmax is `scale`.
      const order = Array.from({ length: 64 }, (_, i) => (i * 37) % 64);
      const values = Float32Array.from(order, (i) => NF4_REF[i % 16]! * scale);
      const q = quantizeNf4(values);
      expect(q.absmax[0]).toBe(scale);
      for (let i = 0; i < 64; i++) expect(nibble(q.codes, i)).toBe(order[i]! % 16);
      expect(dequantizeNf4(q)).toEqual(values);
    }
  });

  test('nibble order: element 2k in the high nibble of byte k', () => {
    // Levels chosen so each byte is distinct: (15, 0), (8, 7), (1, 14).
    const values = Float32Array.from([1, -1, NF4_REF[8]!, 0, NF4_REF[1]!, NF4_REF[14]!]);
    const q = quantizeNf4(values);
    expect(Array.from(q.codes)).toEqual([0xf0, 0x87, 0x1e]);
  });

  test('codes are the nearest level and the round trip stays within half the largest gap times absmax', () => {
    const values = randomNormal(64 * 200, 7, 0.02);
    const q = quantizeNf4(values);
    const back = dequantizeNf4(q);
    const absmax = refAbsmax(values, 64);
    expect(Array.from(q.absmax)).toEqual(absmax);
    let ties = 0;
    let sqErr = 0;
    let sqVal = 0;
    for (let i = 0; i < values.length; i++) {
      const a = absmax[Math.floor(i / 64)]!;
      const { code, margin } = refNearest(values[i]! / a);
      if (margin < 1e-9) ties++;
      else expect(nibble(q.codes, i)).toBe(code);
      // Dequantization is level * absmax, rounded to fp32.
      expect(back[i]).toBe(Math.fround(NF4_REF[nibble(q.codes, i)]! * a));
      expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(NF4_HALF_MAX_GAP * a * (1 + 1e-6));
      sqErr += (back[i]! - values[i]!) ** 2;
      sqVal += values[i]! ** 2;
    }
    expect(ties).toBe(0);
    // NF4 on normal data keeps ~ 10% relative RMS error (far below the worst case of half a gap).
    expect(Math.sqrt(sqErr / sqVal)).toBeLessThan(0.12);
  });

  test('a value exactly halfway between two levels rounds down, as bitsandbytes compares with >', () => {
    const mid = (NF4_REF[10]! + NF4_REF[11]!) / 2;
    // float64 midpoint of the normalized value; absmax 1 keeps it unscaled (to fp32 precision).
    const values = Float32Array.from([1, mid]);
    const q = quantizeNf4(values);
    const x = Math.fround(mid);
    expect(nibble(q.codes, 1)).toBe(x > mid ? 11 : 10);
  });

  test('a size that is not a multiple of 64 has a shorter last block (odd sizes too)', () => {
    for (const n of [64 * 3 + 5, 64 + 6, 7, 1]) {
      const values = randomNormal(n, n, 1);
      // Make the short block's absmax differ from the others, so a wrong block length shows.
      values[n - 1] = 0.001 * (values[n - 1]! > 0 ? 1 : -1);
      const q = quantizeNf4(values);
      const absmax = refAbsmax(values, 64);
      expect(q.codes.length).toBe(Math.ceil(n / 2));
      expect(Array.from(q.absmax)).toEqual(absmax);
      const back = dequantizeNf4(q);
      expect(back.length).toBe(n);
      for (let i = 0; i < n; i++) {
        const a = absmax[Math.floor(i / 64)]!;
        expect(back[i]).toBe(Math.fround(NF4_REF[refNearest(values[i]! / a).code]! * a));
      }
    }
  });

  test('an all-zero block gets absmax 0 and the zero code, and dequantizes to 0, never NaN', () => {
    const values = randomNormal(64 * 3, 3, 1);
    values.fill(0, 64, 128);
    const q = quantizeNf4(values);
    expect(q.absmax[1]).toBe(0);
    for (let i = 64; i < 128; i++) expect(NF4_REF[nibble(q.codes, i)]).toBe(0);
    const back = dequantizeNf4(q);
    for (let i = 64; i < 128; i++) expect(Object.is(back[i], 0) || Object.is(back[i], -0)).toBe(true);
    expect(back.some(Number.isNaN)).toBe(false);
  });

  test('dequantizes into a caller buffer and checks its arguments', () => {
    const values = randomNormal(130, 1, 1);
    const q = quantizeNf4(values);
    const out = new Float32Array(200).fill(9);
    expect(dequantizeNf4(q, out)).toBe(out);
    expect(out.subarray(0, 130)).toEqual(dequantizeNf4(q));
    expect(out[130]).toBe(9);
    expect(() => dequantizeNf4(q, new Float32Array(10))).toThrow(/'out' passed to 'dequantizeNf4'/);
    expect(() => dequantizeNf4({ ...q, absmax: new Float32Array(2) })).toThrow(/must hold 3 values, got 2/);
    expect(() => quantizeNf4(values, 63)).toThrow(
      /'blockSize' passed to 'quantizeNf4' must be a positive even/,
    );
  });

  test('codes and absmaxes live in shared memory so worker threads can read them', () => {
    const q = quantizeNf4(randomNormal(128, 2, 1));
    expect(q.codes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(q.absmax.buffer).toBeInstanceOf(SharedArrayBuffer);
  });
});
