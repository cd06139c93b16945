/**
 * NF4, the 4-bit NormalFloat format of QLoRA (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of
 * Quantized LLMs", https://arxiv.org/abs/2305.14314, appendix E), as bitsandbytes stores it:
 *
 *   blocks of 64 values, one fp32 absmax a per block,
 *   code(v) = argmin_k |v / a - NF4[k]|,   v' = NF4[code] * a,
 *   two codes per byte, element 2k in the HIGH nibble, element 2k+1 in the low nibble.
 *
 * A block whose values are all zero has a = 0; its values get the code of 0.0 (index 7), so it
 * dequantizes to exactly 0 (never 0 / 0 = NaN), even when double quantization perturbs its absmax.
 */
import {
  blockAbsmax,
  blockCount,
  checkBlockSize,
  checkLength,
  quantizeBlocks,
  sharedUint8,
} from './shared-arrays.js';

/**
 * The 16 NF4 levels, verbatim from bitsandbytes (`bitsandbytes/functional.py`, `get_4bit_type('nf4')`,
 * and the `dDequantizeNF4` table in `csrc/kernels.cu`); each is an exact float32. Index 7 is 0.0.
 */
export const NF4_CODEBOOK: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Index of 0.0 in {@link NF4_CODEBOOK}. */
export const NF4_ZERO_CODE = 7;

/** Default NF4 block size (bitsandbytes' and the QLoRA paper's). */
export const NF4_BLOCK_SIZE = 64;

// Decision thresholds: MIDPOINTS[i] lies halfway between NF4[i] and NF4[i + 1]; a normalized value
// strictly above it rounds up (bitsandbytes' `dQuantizeNF4` compares with `>` too). The 16th entry
// is a sentinel so the binary search below can index c + 7 when c = 8 without a bounds check.
const MIDPOINTS = new Float64Array(16);
for (let i = 0; i < 15; i++) MIDPOINTS[i] = (NF4_CODEBOOK[i]! + NF4_CODEBOOK[i + 1]!) / 2;
MIDPOINTS[15] = Number.POSITIVE_INFINITY;

/** NF4 codes of a tensor: packed nibbles and one absmax per block. */
export interface Nf4Blocks {
  /** `ceil(size / 2)` bytes; element 2k in the high nibble of byte k. */
  readonly codes: Uint8Array;
  /** One fp32 absmax per block of `blockSize` values (`ceil(size / blockSize)` entries). */
  readonly absmax: Float32Array;
  /** Number of values. */
  readonly size: number;
  readonly blockSize: number;
}

/** The nearest NF4 code of a value already divided by its block's absmax (ties go down). */
export function nearestNf4Code(x: number): number {
  // Binary search for the number of midpoints below x: 4 comparisons instead of 15. Adding the
  // comparisons as numbers (no `if`) avoids mispredicted branches on random weights (2x faster).
  let c = +(x > MIDPOINTS[7]!) * 8;
  c += +(x > MIDPOINTS[c + 3]!) * 4;
  c += +(x > MIDPOINTS[c + 1]!) * 2;
  c += +(x > MIDPOINTS[c]!);
  return c;
}

/**
 * Quantizes fp32 values to NF4 with one absmax per block.
 * @param values flat values (any shape, row-major)
 * @param blockSize values per block (default 64, must be even so blocks start on a byte)
 * @example
 *   const q = quantizeNf4(weights);          // q.codes: Uint8Array, q.absmax: Float32Array
 *   const back = dequantizeNf4(q);           // ~4.5 bits per value
 */
export function quantizeNf4(values: Float32Array, blockSize: number = NF4_BLOCK_SIZE): Nf4Blocks {
  checkBlockSize(blockSize, 'quantizeNf4', { even: true });
  const size = values.length;
  const codes = sharedUint8(Math.ceil(size / 2));
  const absmax = quantizeBlocks(
    size,
    blockSize,
    (start, end) => blockAbsmax(values, start, end),
    (start, end, a) => {
      // A zero block: every value is 0, so every code is the zero code.
      const inv = a > 0 ? 1 / a : 0;
      for (let i = start; i < end; i += 2) {
        const hi = nearestNf4Code(values[i]! * inv);
        const lo = i + 1 < end ? nearestNf4Code(values[i + 1]! * inv) : 0;
        codes[i >> 1] = (hi << 4) | lo;
      }
    },
  );
  return { codes, absmax, size, blockSize };
}

/**
 * Dequantizes NF4 codes: `v' = NF4[code] * absmax[block]`, via a 16-entry table scaled once per block
 * (two lookups per byte, no allocation per value).
 * @param q codes, absmax, size and block size as returned by {@link quantizeNf4}
 * @param out optional destination of at least `q.size` values (reused across layers to avoid garbage)
 * @example
 *   const w = dequantizeNf4(quantizeNf4(values)); // Float32Array, same length as values
 */
export function dequantizeNf4(q: Nf4Blocks, out: Float32Array = new Float32Array(q.size)): Float32Array {
  const { codes, absmax, size, blockSize } = q;
  checkBlockSize(blockSize, 'dequantizeNf4', { even: true });
  checkLength('codes', 'dequantizeNf4', codes.length, Math.ceil(size / 2), { unit: 'bytes' });
  checkLength('absmax', 'dequantizeNf4', absmax.length, blockCount(size, blockSize));
  checkLength('out', 'dequantizeNf4', out.length, size, { atLeast: true });
  const table = new Float32Array(16);
  const bytesPerBlock = blockSize >> 1;
  const fullBytes = size >> 1; // bytes holding two values
  const nBlocks = absmax.length;
  for (let b = 0; b < nBlocks; b++) {
    const a = absmax[b]!;
    for (let k = 0; k < 16; k++) table[k] = NF4_CODEBOOK[k]! * a;
    const byteStart = b * bytesPerBlock;
    const byteEnd = Math.min(byteStart + bytesPerBlock, fullBytes);
    let o = byteStart << 1;
    for (let j = byteStart; j < byteEnd; j++) {
      const c = codes[j]!;
      out[o++] = table[c >> 4]!;
      out[o++] = table[c & 15]!;
    }
  }
  // An odd size leaves one value alone in the high nibble of the last byte.
  if (size % 2 === 1) out[size - 1] = NF4_CODEBOOK[codes[fullBytes]! >> 4]! * absmax[nBlocks - 1]!;
  return out;
}
