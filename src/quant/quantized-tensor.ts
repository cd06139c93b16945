/**
 * Frozen weights kept as NF4 or int8 codes (src/weights/frozen-tensor.ts). The codes and scales stay in
 * shared typed arrays for the whole run; `toFloat32()` rebuilds fp32 values when a layer computes.
 */
import type { FrozenTensor } from '../weights/frozen-tensor.js';
import { type DoubleQuantAbsmax, dequantizeDoubleQuant } from './double-quant.js';
import { dequantizeInt8 } from './int8.js';
import { dequantizeNf4 } from './nf4.js';

/** Block absmaxes: plain fp32, or double-quantized to 8 bits. */
export type BlockAbsmax = Float32Array | DoubleQuantAbsmax;

/** Bytes held by a block-absmax list: 4 per fp32 absmax, or 1 per code + 4 per scale + 4 (offset). */
export function absmaxByteLength(absmax: BlockAbsmax): number {
  return absmax instanceof Float32Array
    ? absmax.byteLength
    : absmax.codes.byteLength + absmax.scales.byteLength + 4;
}

function checkCodes(name: string, shape: readonly number[], codes: number, expected: number): void {
  if (codes !== expected) {
    throw new Error(
      `Tensor '${name}' of shape [${shape.join(', ')}] needs ${expected} code bytes, got ${codes}`,
    );
  }
}

/** What NF4 and int8 weights share: block absmaxes (plain or double-quantized) and their byte count. */
abstract class BlockQuantTensor {
  readonly size: number;

  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    readonly codes: Uint8Array | Int8Array,
    readonly absmax: BlockAbsmax,
    readonly blockSize: number,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  /** Codes plus every scale (and the double-quantization offset). */
  get byteLength(): number {
    return this.codes.byteLength + absmaxByteLength(this.absmax);
  }

  get doubleQuant(): boolean {
    return !(this.absmax instanceof Float32Array);
  }

  /** The block absmaxes as fp32 (dequantized first when double-quantized). */
  protected plainAbsmax(): Float32Array {
    return this.absmax instanceof Float32Array ? this.absmax : dequantizeDoubleQuant(this.absmax);
  }
}

/** A frozen weight stored as NF4 codes (two per byte) with one absmax per block of 64. */
export class Nf4Tensor extends BlockQuantTensor implements FrozenTensor {
  readonly storage = 'nf4' as const;

  constructor(
    name: string,
    shape: readonly number[],
    /** `ceil(size / 2)` bytes, element 2k in the high nibble. */
    readonly codes: Uint8Array,
    absmax: BlockAbsmax,
    blockSize: number,
  ) {
    super(name, shape, codes, absmax, blockSize);
    checkCodes(name, shape, codes.length, Math.ceil(this.size / 2));
  }

  /** Dequantized fp32 values; pass `out` (at least `size` long) to reuse a buffer. */
  toFloat32(out?: Float32Array): Float32Array {
    const q = { codes: this.codes, absmax: this.plainAbsmax(), size: this.size, blockSize: this.blockSize };
    return dequantizeNf4(q, out);
  }
}

/** A frozen weight stored as one int8 code per value with one absmax per block of 64. */
export class Int8Tensor extends BlockQuantTensor implements FrozenTensor {
  readonly storage = 'int8' as const;

  constructor(
    name: string,
    shape: readonly number[],
    readonly codes: Int8Array,
    absmax: BlockAbsmax,
    blockSize: number,
  ) {
    super(name, shape, codes, absmax, blockSize);
    checkCodes(name, shape, codes.length, this.size);
  }

  /** Dequantized fp32 values; pass `out` (at least `size` long) to reuse a buffer. */
  toFloat32(out?: Float32Array): Float32Array {
    const q = { codes: this.codes, absmax: this.plainAbsmax(), size: this.size, blockSize: this.blockSize };
    return dequantizeInt8(q, out);
  }
}
