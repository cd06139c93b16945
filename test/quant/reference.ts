/**
 * Independent reference computations for the quantization tests, written from the definitions
 * (QLoRA paper appendix E, bitsandbytes' NF4 table) in float64, without calling src/quant.
 */
import { Rng } from '../../src/util/index.js';

/** The NF4 levels as printed by bitsandbytes (`get_4bit_type('nf4')`), copied here independently. */
export const NF4_REF = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

/** Half the largest gap between adjacent NF4 levels: the worst rounding error of a normalized value. */
export const NF4_HALF_MAX_GAP = Math.max(...NF4_REF.slice(1).map((c, i) => c - NF4_REF[i]!)) / 2;

/** Standard normal samples (Box-Muller over the project's seeded RNG), times `std`. */
export function randomNormal(n: number, seed: number, std = 1): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng.next();
    const v = rng.next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** max |v| over each block of `blockSize` (the last block may be shorter). */
export function refAbsmax(values: ArrayLike<number>, blockSize: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < values.length; s += blockSize) {
    let a = 0;
    for (let i = s; i < Math.min(s + blockSize, values.length); i++) a = Math.max(a, Math.abs(values[i]!));
    out.push(a);
  }
  return out;
}

/** The NF4 code of element i of packed codes: even elements in the high nibble. */
export function nibble(codes: Uint8Array, i: number): number {
  const byte = codes[i >> 1]!;
  return i % 2 === 0 ? byte >> 4 : byte & 15;
}

/** Argmin over the 16 levels of |x - level|, plus the distance gap to the runner-up (to spot ties). */
export function refNearest(x: number): { code: number; margin: number } {
  const d = NF4_REF.map((c) => Math.abs(x - c));
  const sorted = [...d].sort((a, b) => a - b);
  return { code: d.indexOf(sorted[0]!), margin: sorted[1]! - sorted[0]! };
}

/** Round half away from zero. */
export function roundHalfAway(x: number): number {
  return Math.sign(x) * Math.floor(Math.abs(x) + 0.5) + 0; // + 0 turns -0 into 0
}

/**
 * NF4 quantize-then-dequantize from the definition: blocks of 64, absmax per block, nearest level;
 * with `doubleQuant`, absmaxes are rebuilt as fp32(mean) + round(127 (a - mean) / s) * s / 127 with
 * s = fp32(max |a - mean|) per 256 absmaxes. Returns what an NF4 base holds, as fp32.
 */
export function refNf4RoundTrip(values: ArrayLike<number>, doubleQuant: boolean): Float32Array {
  const absmax = refAbsmax(values, 64);
  let stored = absmax; // the absmaxes dequantization sees
  if (doubleQuant) {
    const mean = Math.fround(absmax.reduce((x, y) => x + y, 0) / absmax.length);
    const scales = refAbsmax(
      absmax.map((a) => a - mean),
      256,
    ).map(Math.fround);
    stored = absmax.map((a, i) => {
      const s = scales[Math.floor(i / 256)]!;
      const code = s === 0 ? 0 : roundHalfAway((127 * (a - mean)) / s);
      return Math.fround(mean + code * (s / 127));
    });
  }
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const b = Math.floor(i / 64);
    // Codes come from the true absmax; a zero block takes the level 0.0.
    const x = absmax[b] === 0 ? 0 : values[i]! / absmax[b]!;
    out[i] = NF4_REF[refNearest(x).code]! * stored[b]!;
  }
  return out;
}
