/**
 * 16-bit float conversions for frozen weights (tfjs has no 16-bit dtypes, so bf16 / f16 weights
 * are kept as raw 16-bit words in a Uint16Array and widened to fp32 only when a layer runs).
 *
 * - bf16 is the top half of an fp32: widening is a 16-bit shift, narrowing rounds the low half.
 * - f16 (IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits) is widened through a 65536-entry
 *   table (one lookup per value; a generic float16 routine is ~20x slower).
 * - Narrowing rounds to nearest, ties to even, like PyTorch's `.to(torch.bfloat16/float16)`.
 *   NaN stays NaN (quiet, sign kept), ±Infinity stays ±Infinity. A finite fp32 value too large
 *   for f16 (|x| >= 65520, which would round to infinity) is an error naming the tensor.
 */
import { fail } from '../util/index.js';

/** Largest finite f16 is 65504; |x| >= 65520 (= 65504 + half an ulp) rounds to infinity. */
const F16_OVERFLOW_BITS = 0x477ff000;

let f16Table: Uint32Array | null = null;

/** fp32 bit patterns of all 65536 f16 values, built once on first use. */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      // Inf (mant 0) or NaN (payload moved to the top of the fp32 mantissa).
      table[h] = sign | 0x7f800000 | (mant << 13);
    } else if (exp === 0) {
      // Zero or subnormal: mant * 2^-24 is exact in fp32, so go through a float.
      const bits = new Uint32Array(new Float32Array([mant * 2 ** -24]).buffer)[0] as number;
      table[h] = (sign | bits) >>> 0;
    } else {
      // Normal: rebias the exponent (15 -> 127), widen the mantissa (10 -> 23 bits).
      table[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  f16Table = table;
  return table;
}

/**
 * Widen bf16 words to fp32 (exact: a bf16 is the high 16 bits of an fp32).
 * @param u16 raw bf16 words
 * @example const w = bf16ToF32(file.read('model.norm.weight').data as Uint16Array);
 */
export function bf16ToF32(u16: Uint16Array): Float32Array {
  const out = new Float32Array(u16.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < u16.length; i++) bits[i] = (u16[i] as number) << 16;
  return out;
}

/**
 * Widen f16 words to fp32 (exact) through a 65536-entry table.
 * @param u16 raw IEEE binary16 words
 * @example const w = f16ToF32(file.read('lm_head.weight').data as Uint16Array);
 */
export function f16ToF32(u16: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(u16.length);
  // Copy bit patterns, not floats, so NaN payloads survive.
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < u16.length; i++) bits[i] = table[u16[i] as number] as number;
  return out;
}

/**
 * Round fp32 values to bf16, to nearest with ties to even (NaN stays a quiet NaN).
 * @param f32 values to narrow
 * @example const words = f32ToBf16(merged); // write with dtype 'BF16'
 */
export function f32ToBf16(f32: Float32Array): Uint16Array {
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] as number;
    if ((b & 0x7fffffff) > 0x7f800000) {
      // NaN: keep sign and the top of the payload, force the quiet bit so it cannot become Inf.
      out[i] = (b >>> 16) | 0x40;
    } else {
      // Add 0x7fff plus the lowest kept bit: rounds half-way cases to the even neighbour.
      out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/**
 * Round fp32 values to f16, to nearest with ties to even, subnormals included.
 * @param f32 values to narrow
 * @param tensorName named in the error when a finite value exceeds the f16 range (|x| >= 65520)
 * @example const words = f32ToF16(merged, 'model.layers.0.mlp.down_proj.weight');
 */
export function f32ToF16(f32: Float32Array, tensorName: string): Uint16Array {
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] as number;
    const sign = (b >>> 16) & 0x8000;
    const a = b & 0x7fffffff;
    if (a >= 0x7f800000) {
      // Inf stays Inf; NaN stays a quiet NaN (top payload bits kept).
      out[i] = a === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((a >>> 13) & 0x3ff);
    } else if (a >= F16_OVERFLOW_BITS) {
      fail(
        tensorName,
        `value ${f32[i]} at index ${i} is outside the float16 range (largest finite float16 is 65504)`,
        'merge or save with --dtype bf16 or fp32',
      );
    } else if (a < 0x38800000) {
      // Below 2^-14: an f16 subnormal (units of 2^-24) or zero. x * 2^24 is exact in a double.
      const m = (f32[i] as number) * (sign ? -1 : 1) * 2 ** 24;
      let q = Math.floor(m);
      const rest = m - q;
      if (rest > 0.5 || (rest === 0.5 && (q & 1) === 1)) q++;
      out[i] = sign | q; // q may reach 0x400, which is exactly the smallest normal
    } else {
      // Normal: round the 13 dropped mantissa bits to nearest even, then rebias 127 -> 15.
      // A carry out of the mantissa correctly bumps the exponent.
      const rounded = a + 0xfff + ((a >>> 13) & 1);
      out[i] = sign | ((rounded - 0x38000000) >>> 13);
    }
  }
  return out;
}
