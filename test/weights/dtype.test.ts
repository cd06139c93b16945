import { describe, expect, test } from 'vitest';
import { MftError } from '../../src/util/index.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/weights/dtype.js';

// Independent references: the value of a 16-bit word is computed from the IEEE definition with
// Math.pow in doubles, and the nearest 16-bit value is found by searching candidates, not by
// bit tricks.

/** Value of an IEEE binary16 word, from the definition. */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

/** Value of a bf16 word, from the definition (8-bit exponent, 7-bit mantissa). */
function bf16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0) return s * m * 2 ** -133;
  if (e === 255) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 127) * (1 + m / 128);
}

/** Nearest representable value, ties to the word with an even last bit; beyond `max` + half ulp: ±Inf word. */
function nearest(x: number, words: number[], value: (h: number) => number): number {
  let best = -1;
  let bestDist = Number.POSITIVE_INFINITY;
  for (const h of words) {
    const d = Math.abs(value(h) - x);
    if (d < bestDist || (d === bestDist && (h & 1) === 0)) {
      best = h;
      bestDist = d;
    }
  }
  return best;
}

const f32 = (bits: number[]): Float32Array => new Float32Array(new Uint32Array(bits).buffer);

// Values of every finite non-negative half, increasing with the word (sign handled by the caller).
const positiveHalfValues = Array.from({ length: 0x7c00 }, (_, h) => halfValue(h));

function refF16(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Number.POSITIVE_INFINITY) return sign | 0x7c00;
  // Binary search for the first half >= a; the nearest is it or the one below.
  let lo = 0;
  let hi = positiveHalfValues.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((positiveHalfValues[mid] as number) < a) lo = mid + 1;
    else hi = mid;
  }
  return (
    sign |
    nearest(
      a,
      [lo - 1, lo].filter((h) => h >= 0),
      halfValue,
    )
  );
}

function refBf16(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Number.POSITIVE_INFINITY) return sign | 0x7f80;
  // Candidates: the bf16 words around a (the two by truncation, and the next one for safety).
  const bits = new Uint32Array(new Float32Array([a]).buffer)[0] as number;
  const lo = bits >>> 16;
  const cands = [lo, lo + 1].filter((h) => h <= 0x7f80);
  // Infinity sits where 2^128 would: a value at or beyond max + half an ulp rounds to it (IEEE).
  const value = (h: number) => (h === 0x7f80 ? 2 ** 128 : bf16Value(h));
  return sign | nearest(a, cands, value);
}

describe('f16ToF32', () => {
  test('decodes all 65536 halves as the IEEE definition says', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const got = f16ToF32(all);
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const want = halfValue(h);
      const ok = Number.isNaN(want) ? Number.isNaN(got[h]) : Object.is(got[h], want);
      if (!ok) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });
});

describe('bf16ToF32', () => {
  test('decodes bf16 words as the definition says, including subnormals', () => {
    const words = [0x0000, 0x8000, 0x0001, 0x007f, 0x0080, 0x3f80, 0xbfc0, 0x7f7f, 0x7f80, 0xff80, 0x4049];
    const got = bf16ToF32(new Uint16Array(words));
    for (const [i, h] of words.entries()) expect(Object.is(got[i], bf16Value(h))).toBe(true);
    expect(Number.isNaN(bf16ToF32(new Uint16Array([0x7fc0]))[0])).toBe(true);
  });
});

describe('f32ToBf16', () => {
  test('rounds ties to even', () => {
    // 0x3f808000 is exactly between 0x3f80 and 0x3f81 (odd): stays 0x3f80.
    // 0x3f818000 is exactly between 0x3f81 and 0x3f82: goes up to the even 0x3f82.
    // 0x3f808001 is just above the tie: rounds up.
    const got = f32ToBf16(f32([0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff]));
    expect([...got]).toEqual([0x3f80, 0x3f82, 0x3f81, 0x3f80]);
  });

  test('matches the nearest-value search on edge and random values', () => {
    const edges = [
      0x00000000, 0x80000000, 0x00000001, 0x00008000, 0x00018000, 0x0000ffff, 0x007fffff, 0x00800000,
      0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0xff7fffff, 0x3f800000, 0x3eaaaaab, 0xc2f6e979,
    ];
    let s = 12345;
    const rand = Array.from({ length: 20000 }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return (s & 0x7f000000 ? s : s | 0x10000000) >>> 0;
    });
    const bits = [...edges, ...rand].filter((b) => (b & 0x7fffffff) < 0x7f800000);
    const x = f32(bits);
    const got = f32ToBf16(x);
    const wrong = bits.filter((_b, i) => got[i] !== refBf16(x[i] as number)).map((b) => b.toString(16));
    expect(wrong).toEqual([]);
  });

  test('keeps NaN a NaN and infinities infinite', () => {
    // A NaN whose payload lives only in the low 16 bits must not collapse to Inf.
    const got = f32ToBf16(f32([0x7f800001, 0xffc00000, 0x7f800000, 0xff800000]));
    const back = bf16ToF32(got);
    expect(Number.isNaN(back[0])).toBe(true);
    expect(Number.isNaN(back[1])).toBe(true);
    expect(back[2]).toBe(Number.POSITIVE_INFINITY);
    expect(back[3]).toBe(Number.NEGATIVE_INFINITY);
    // The largest finite fp32 is past bf16's max + half an ulp: rounds to infinity (as PyTorch).
    expect(bf16ToF32(f32ToBf16(f32([0x7f7fffff])))[0]).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('f32ToF16', () => {
  test('rounds ties to even, subnormals included', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // between 1 and 1+2^-10: tie, stays at even 1.0
      [1 + 3 * 2 ** -11, 0x3c02], // between 0x3c01 and 0x3c02: tie, goes to even 0x3c02
      [2 ** -25, 0x0000], // half the smallest subnormal: tie between 0 and 1 unit -> 0
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 units -> 2
      [1023.5 * 2 ** -24, 0x0400], // tie between the largest subnormal and the smallest normal
      [-(2 ** -24), 0x8001],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [-0, 0x8000],
    ];
    const got = f32ToF16(new Float32Array(cases.map((c) => c[0])), 't');
    for (const [i, [x, want]] of cases.entries()) expect(got[i], `x = ${x}`).toBe(want);
  });

  test('matches the nearest-value search over all halves on random values', () => {
    let s = 987;
    const xs: number[] = [];
    for (let i = 0; i < 20000; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const u = s / 2 ** 32;
      // Log-uniform magnitudes from 2^-26 to 2^15.9 cover subnormals, normals and the top binade.
      const mag = 2 ** (-26 + u * 41.9);
      xs.push(i % 2 ? -mag : mag);
    }
    const x = new Float32Array(xs);
    const got = f32ToF16(x, 't');
    const wrong = [...x].filter((v, i) => got[i] !== refF16(v));
    expect(wrong).toEqual([]);
  });

  test('keeps NaN a NaN and infinities infinite', () => {
    const got = f16ToF32(f32ToF16(f32([0x7f800001, 0xffc00000, 0x7f800000, 0xff800000]), 't'));
    expect(Number.isNaN(got[0])).toBe(true);
    expect(Number.isNaN(got[1])).toBe(true);
    expect(got[2]).toBe(Number.POSITIVE_INFINITY);
    expect(got[3]).toBe(Number.NEGATIVE_INFINITY);
  });

  test('overflow is an error naming the tensor', () => {
    const name = 'model.layers.3.mlp.down_proj.weight';
    expect(() => f32ToF16(new Float32Array([1, -65520]), name)).toThrow(MftError);
    expect(() => f32ToF16(new Float32Array([1, 70000]), name)).toThrow(
      'model.layers.3.mlp.down_proj.weight: value 70000 at index 1 is outside the float16 range (largest finite float16 is 65504) (fix: merge or save with --dtype bf16 or fp32)',
    );
  });

  test('works on a subarray view', () => {
    const big = new Float32Array([7, 1.5, -2, 9]);
    expect([...f32ToF16(big.subarray(1, 3), 't')]).toEqual([0x3e00, 0xc000]);
    expect([...f32ToBf16(big.subarray(1, 3))]).toEqual([0x3fc0, 0xc000]);
  });
});
