/**
 * The contract between a frozen weight kept on the tfjs device in its storage format and the
 * kernels that widen it to fp32 there (`model/device-weights.ts` calls them through
 * `tf.engine().runKernel`; `backend/dequant-kernels.ts` registers them for webgpu, cpu and wasm).
 *
 * tfjs tensors are float32 or int32 only, so 8- and 16-bit storage travels as int32 words,
 * little-endian, zero-padded to a whole word:
 *   bf16 / f16: element e in bits 16 * (e % 2) .. of word e / 2
 *   nf4:        byte k = e / 2 (element 2k in its high nibble, as quant/nf4.ts packs it),
 *               byte k in bits 8 * (k % 4) .. of word k / 4
 *   int8:       element e in bits 8 * (e % 4) .. of word e / 4 (two's complement)
 * The block absmaxes are float32; double-quantized ones are int8 codes (as words) plus float32 scales.
 */

/** fp32 `[rows, cols]` (or `[cols, rows]` with `transpose`) from words: `{ words, absmax? }`. */
export const DEQUANTIZE_KERNEL = 'MftDequantize';
/** The fp32 block absmaxes of double quantization: `{ codes, scales }` -> `[size]`. */
export const DEQUANTIZE_ABSMAX_KERNEL = 'MftDequantizeAbsmax';

/** Storage formats that travel as words. */
export type WordFormat = 'bf16' | 'f16' | 'nf4' | 'int8';

export interface DequantizeAttrs {
  format: WordFormat;
  /** The stored shape `[rows, cols]` (a 1-D tensor is `[1, size]`). */
  rows: number;
  cols: number;
  /** Write `W^T` (`[cols, rows]`), the layout of a projection in `LayerTensors`. */
  transpose: boolean;
  /** Values per absmax (nf4, int8); 0 for bf16 / f16. */
  blockSize: number;
}

export interface DequantizeAbsmaxAttrs {
  /** Number of absmaxes. */
  size: number;
  /** Absmaxes per scale. */
  blockSize: number;
  /** The mean the codes are centred on. */
  offset: number;
}

/** `bytes` as little-endian int32 words, the last one zero-padded (a view when already aligned). */
export function toWords(bytes: Uint8Array | Int8Array | Uint16Array): Int32Array {
  const n = bytes.byteLength;
  if (n % 4 === 0 && bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, n / 4);
  const words = new Int32Array(Math.ceil(n / 4));
  new Uint8Array(words.buffer).set(new Uint8Array(bytes.buffer, bytes.byteOffset, n));
  return words;
}

/** The first `byteLength` bytes of `words` (the inverse of `toWords`, as a view). */
export function wordBytes(words: Int32Array, byteLength: number): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, byteLength);
}
