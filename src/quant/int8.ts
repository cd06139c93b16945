/**
 * Blockwise symmetric int8 (absmax) quantization:
 *
 *   blocks of 64 values, one fp32 absmax a per block,
 *   code(v) = round(127 * v / a)  in [-127, 127]  (half away from zero, so +v and -v mirror),
 *   v' = code * (a / 127),         |v - v'| <= a / 254.
 *
 * An all-zero block has a = 0 and codes 0, and dequantizes to exactly 0.
 */
import {
  blockAbsmax,
  blockCount,
  checkBlockSize,
  checkLength,
  quantizeBlocks,
  sharedInt8,
} from './shared-arrays.js';

/** Default int8 block size. */
export const INT8_BLOCK_SIZE = 64;

/** int8 codes of a tensor and one absmax per block. */
export interface Int8Blocks {
  /** One signed code per value. */
  readonly codes: Int8Array;
  /** One fp32 absmax per block of `blockSize` values (`ceil(size / blockSize)` entries). */
  readonly absmax: Float32Array;
  /** Number of values. */
  readonly size: number;
  readonly blockSize: number;
}

/**
 * The int8 code of `x` (a value already scaled by 127 / scale): rounded half away from zero, so +x
 * and -x mirror; |x| <= 127 up to rounding, the clamp to [-127, 127] makes it certain.
 */
export function roundToInt8(x: number): number {
  const r = x >= 0 ? Math.floor(x + 0.5) : -Math.floor(0.5 - x);
  return Math.min(127, Math.max(-127, r));
}

/**
 * Quantizes fp32 values to int8 with one absmax per block.
 * @param values flat values (any shape, row-major)
 * @param blockSize values per block (default 64)
 * @example
 *   const q = quantizeInt8(weights);   // q.codes: Int8Array, q.absmax: Float32Array
 *   const back = dequantizeInt8(q);
 */
export function quantizeInt8(values: Float32Array, blockSize: number = INT8_BLOCK_SIZE): Int8Blocks {
  checkBlockSize(blockSize, 'quantizeInt8');
  const size = values.length;
  const codes = sharedInt8(size);
  const absmax = quantizeBlocks(
    size,
    blockSize,
    (start, end) => blockAbsmax(values, start, end),
    (start, end, a) => {
      if (a === 0) return; // codes stay 0
      const f = 127 / a;
      for (let i = start; i < end; i++) codes[i] = roundToInt8(values[i]! * f);
    },
  );
  return { codes, absmax, size, blockSize };
}

/**
 * Dequantizes int8 codes: `v' = code * (absmax[block] / 127)`.
 * @param q codes, absmax, size and block size as returned by {@link quantizeInt8}
 * @param out optional destination of at least `q.size` values
 * @example
 *   const w = dequantizeInt8(quantizeInt8(values));
 */
export function dequantizeInt8(q: Int8Blocks, out: Float32Array = new Float32Array(q.size)): Float32Array {
  const { codes, absmax, size, blockSize } = q;
  checkBlockSize(blockSize, 'dequantizeInt8');
  checkLength('codes', 'dequantizeInt8', codes.length, size);
  checkLength('absmax', 'dequantizeInt8', absmax.length, blockCount(size, blockSize));
  checkLength('out', 'dequantizeInt8', out.length, size, { atLeast: true });
  const nBlocks = absmax.length;
  for (let b = 0; b < nBlocks; b++) {
    const s = absmax[b]! / 127;
    const start = b * blockSize;
    const end = Math.min(start + blockSize, size);
    for (let i = start; i < end; i++) out[i] = codes[i]! * s;
  }
  return out;
}
