import { describe, expect, test } from 'vitest';
import { dequantizeDoubleQuant, doubleQuantize } from '../../src/quant/double-quant.js';
import { dequantizeNf4, quantizeNf4 } from '../../src/quant/nf4.js';
import { NF4_HALF_MAX_GAP, randomNormal, refAbsmax, roundHalfAway } from './reference.js';

describe('double quantization of block absmaxes', () => {
  test('offset is the mean; codes are round(127 (a - mean) / s) with s = max |a - mean| per 256', () => {
    // Absmaxes of a realistic weight: NF4 blocks of a normal matrix, 1000 blocks -> 4 DQ blocks.
    const absmax = Float32Array.from(refAbsmax(randomNormal(64 * 1000, 21, 0.02), 64));
    const dq = doubleQuantize(absmax);
    const mean = absmax.reduce((s, a) => s + a, 0) / absmax.length;
    expect(dq.offset).toBe(Math.fround(mean));
    expect(dq.scales.length).toBe(4);
    expect(dq.codes.length).toBe(1000);
    const back = dequantizeDoubleQuant(dq);
    for (let b = 0; b < 4; b++) {
      let s = 0;
      for (let i = b * 256; i < Math.min(1000, b * 256 + 256); i++)
        s = Math.max(s, Math.abs(absmax[i]! - dq.offset));
      expect(dq.scales[b]).toBeCloseTo(s, 12);
      for (let i = b * 256; i < Math.min(1000, b * 256 + 256); i++) {
        const x = (127 * (absmax[i]! - dq.offset)) / dq.scales[b]!;
        if (Math.abs(Math.abs(x % 1) - 0.5) > 1e-6) expect(dq.codes[i]).toBe(roundHalfAway(x));
        // The absmax error bound: half a step of s / 127 (plus fp32 rounding of the result).
        expect(Math.abs(back[i]! - absmax[i]!)).toBeLessThanOrEqual(s / 254 + absmax[i]! * 2 ** -23);
      }
    }
  });

  test('equal absmaxes come back exactly (all codes 0, scale 0)', () => {
    const absmax = new Float32Array(300).fill(0.125);
    const dq = doubleQuantize(absmax);
    expect(Array.from(dq.scales)).toEqual([0, 0]);
    expect(dequantizeDoubleQuant(dq)).toEqual(absmax);
  });

  test('NF4 with double-quantized absmaxes stays within half a gap times absmax plus the absmax error', () => {
    const values = randomNormal(64 * 600 + 40, 33, 0.02);
    const q = quantizeNf4(values);
    const dq = doubleQuantize(q.absmax);
    const absmaxDq = dequantizeDoubleQuant(dq);
    const back = dequantizeNf4({ ...q, absmax: absmaxDq });
    const absmax = refAbsmax(values, 64);
    const nBlocks = absmax.length;
    // Per DQ block of 256 absmaxes: s = max |a - mean|, bound on |a - a'| = s / 254.
    const mean = absmax.reduce((x, y) => x + y, 0) / nBlocks;
    const sPerDqBlock = refAbsmax(
      absmax.map((a) => a - mean),
      256,
    );
    const sOf = (b: number) => sPerDqBlock[Math.floor(b / 256)]!;
    let worstRatio = 0;
    for (let i = 0; i < values.length; i++) {
      const b = Math.floor(i / 64);
      const bound = NF4_HALF_MAX_GAP * absmax[b]! + sOf(b) / 254;
      const err = Math.abs(back[i]! - values[i]!);
      expect(err).toBeLessThanOrEqual(bound * (1 + 1e-5));
      worstRatio = Math.max(worstRatio, err / bound);
    }
    expect(worstRatio).toBeGreaterThan(0.5); // the bound is tight enough to mean something
  });

  test('an all-zero NF4 block stays exactly 0 after double quantization moved its absmax', () => {
    const values = randomNormal(64 * 4, 4, 1);
    values.fill(0, 128, 192);
    // An outlier block sets the DQ scale, so the zero block's absmax is not on an exact step.
    for (let i = 0; i < 64; i++) values[i] = values[i]! * 10;
    const q = quantizeNf4(values);
    const absmaxDq = dequantizeDoubleQuant(doubleQuantize(q.absmax));
    expect(absmaxDq[2]).not.toBe(0); // mean + code * s / 127 is not 0 here
    const back = dequantizeNf4({ ...q, absmax: absmaxDq });
    expect(Array.from(back.subarray(128, 192)).every((v) => v === 0)).toBe(true);
  });

  test('checks its arguments', () => {
    const dq = doubleQuantize(new Float32Array(10).fill(1));
    expect(() => dequantizeDoubleQuant(dq, new Float32Array(3))).toThrow(
      /'out' passed to 'dequantizeDoubleQuant'/,
    );
    expect(() => dequantizeDoubleQuant({ ...dq, scales: new Float32Array(0) })).toThrow(
      /10 codes and 1 scales/,
    );
  });
});
