/**
 * Double quantization (QLoRA paper, section 3): the per-block absmaxes of NF4 (one fp32 per 64
 * values = 0.5 bit per value) are themselves quantized to 8 bits, bringing NF4 to ~4.13 bits per value.
 *
 *   m = mean(absmax)                      kept as one fp32 (absmaxes are >= 0, so centring them
 *                                         roughly halves the range the 8 bits must cover)
 *   r = absmax - m, in blocks of 256, one fp32 scale s = max|r| per block
 *   code = round(127 * r / s)  in [-127, 127],   absmax' = m + code * (s / 127)
 *   |absmax - absmax'| <= s / 254
 *
 * This is the linear int8 scheme of torchao's NF4Tensor. bitsandbytes instead encodes the centred
 * absmaxes with its dynamic (non-linear) 8-bit map; we chose the linear one because its error bound
 * is a one-line formula and it costs the same memory.
 */
import { roundToInt8 } from './int8.js';
import { blockCount, checkBlockSize, quantizeBlocks, sharedInt8 } from './shared-arrays.js';

/** Absmaxes per double-quantization block. */
export const DOUBLE_QUANT_BLOCK_SIZE = 256;

/** 8-bit codes of a list of block absmaxes. */
export interface DoubleQuantAbsmax {
  /** One signed code per absmax. */
  readonly codes: Int8Array;
  /** One fp32 scale (max |absmax - offset|) per block of `blockSize` absmaxes. */
  readonly scales: Float32Array;
  /** The mean of the absmaxes, as fp32. */
  readonly offset: number;
  /** Number of absmaxes. */
  readonly size: number;
  readonly blockSize: number;
}

/**
 * Quantizes block absmaxes to 8 bits around their mean.
 * @param absmax one fp32 absmax per block of the quantized tensor
 * @param blockSize absmaxes per scale (default 256)
 * @example
 *   const q = quantizeNf4(w);
 *   const dq = doubleQuantize(q.absmax);           // 1 byte per absmax + 4 bytes per 256
 *   const absmax = dequantizeDoubleQuant(dq);      // close to q.absmax
 */
export function doubleQuantize(
  absmax: Float32Array,
  blockSize: number = DOUBLE_QUANT_BLOCK_SIZE,
): DoubleQuantAbsmax {
  checkBlockSize(blockSize, 'doubleQuantize');
  const size = absmax.length;
  let sum = 0;
  for (let i = 0; i < size; i++) sum += absmax[i]!;
  const offset = Math.fround(size > 0 ? sum / size : 0);
  const codes = sharedInt8(size);
  const scales = quantizeBlocks(
    size,
    blockSize,
    (start, end) => {
      let s = 0;
      for (let i = start; i < end; i++) {
        const r = Math.abs(absmax[i]! - offset);
        if (r > s) s = r;
      }
      return s;
    },
    (start, end, s) => {
      if (s === 0) return; // every absmax equals the offset: codes stay 0
      const f = 127 / s;
      for (let i = start; i < end; i++) codes[i] = roundToInt8((absmax[i]! - offset) * f);
    },
  );
  return { codes, scales, offset, size, blockSize };
}

/**
 * Restores the absmaxes: `absmax' = offset + code * (scale[block] / 127)`.
 * @param dq as returned by {@link doubleQuantize}
 * @param out optional destination of at least `dq.size` values
 * @example
 *   const absmax = dequantizeDoubleQuant(doubleQuantize(q.absmax));
 */
export function dequantizeDoubleQuant(
  dq: DoubleQuantAbsmax,
  out: Float32Array = new Float32Array(dq.size),
): Float32Array {
  const { codes, scales, offset, size, blockSize } = dq;
  checkBlockSize(blockSize, 'dequantizeDoubleQuant');
  if (codes.length !== size || scales.length !== blockCount(size, blockSize)) {
    throw new Error(
      `Argument 'dq' passed to 'dequantizeDoubleQuant' must hold ${size} codes and ${blockCount(size, blockSize)} scales, got ${codes.length} and ${scales.length}`,
    );
  }
  if (out.length < size) {
    throw new Error(
      `Argument 'out' passed to 'dequantizeDoubleQuant' must hold at least ${size} values, got ${out.length}`,
    );
  }
  for (let b = 0; b < scales.length; b++) {
    const s = scales[b]! / 127;
    const start = b * blockSize;
    const end = Math.min(start + blockSize, size);
    for (let i = start; i < end; i++) out[i] = offset + codes[i]! * s;
  }
  return out;
}
