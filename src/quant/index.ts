/**
 * Quantized storage of the frozen base: NF4 (QLoRA, optionally with double quantization) and
 * blockwise int8. Only the decoder's linear weights are quantized (as bitsandbytes does); the model
 * loader calls `quantize` on each of them as it reads the checkpoint, layer by layer, and the forward
 * pass calls `dequantize` when the layer runs.
 */

import { MftError } from '../util/index.js';
import type { FrozenTensor } from '../weights/frozen-tensor.js';
import { DOUBLE_QUANT_BLOCK_SIZE, doubleQuantize } from './double-quant.js';
import { INT8_BLOCK_SIZE, quantizeInt8 } from './int8.js';
import { NF4_BLOCK_SIZE, quantizeNf4 } from './nf4.js';
import { Int8Tensor, Nf4Tensor } from './quantized-tensor.js';
import { blockCount } from './shared-arrays.js';

export {
  DOUBLE_QUANT_BLOCK_SIZE,
  type DoubleQuantAbsmax,
  dequantizeDoubleQuant,
  doubleQuantize,
} from './double-quant.js';
export { dequantizeInt8, INT8_BLOCK_SIZE, type Int8Blocks, quantizeInt8 } from './int8.js';
export {
  dequantizeNf4,
  NF4_BLOCK_SIZE,
  NF4_CODEBOOK,
  NF4_ZERO_CODE,
  type Nf4Blocks,
  nearestNf4Code,
  quantizeNf4,
} from './nf4.js';
export { type BlockAbsmax, Int8Tensor, Nf4Tensor } from './quantized-tensor.js';

export type QuantKind = 'nf4' | 'int8';

export interface QuantizeOptions {
  /**
   * Quantize the per-block absmaxes to 8 bits (blocks of 256 around their mean). Default: true for
   * nf4 (QLoRA's setting), false for int8.
   */
  doubleQuant?: boolean;
}

/**
 * Quantizes one frozen weight to NF4 or int8 (blocks of 64, fp32 absmax per block, or 8-bit absmaxes
 * with `doubleQuant`).
 * @param name HF weight name, used in error messages
 * @param shape HF shape, `[out, in]` for a linear weight
 * @param values fp32 values, row-major, `product(shape)` long
 * @param kind `'nf4'` (~0.52 bytes/param with double quantization) or `'int8'` (~1.06 bytes/param)
 * @example
 *   const w = quantize('model.layers.0.self_attn.q_proj.weight', [64, 64], values, 'nf4');
 *   const values2 = dequantize(w); // Float32Array(4096)
 */
export function quantize(
  name: string,
  shape: readonly number[],
  values: Float32Array,
  kind: QuantKind,
  opts: QuantizeOptions = {},
): FrozenTensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== values.length) {
    throw new Error(
      `Argument 'values' passed to 'quantize' for '${name}' must hold ${size} values (shape [${shape.join(', ')}]), got ${values.length}`,
    );
  }
  checkFinite(name, values);
  const doubleQuant = opts.doubleQuant ?? kind === 'nf4';
  if (kind === 'nf4') {
    const q = quantizeNf4(values, NF4_BLOCK_SIZE);
    const absmax = doubleQuant ? doubleQuantize(q.absmax, DOUBLE_QUANT_BLOCK_SIZE) : q.absmax;
    return new Nf4Tensor(name, [...shape], q.codes, absmax, q.blockSize);
  }
  if (kind === 'int8') {
    const q = quantizeInt8(values, INT8_BLOCK_SIZE);
    const absmax = doubleQuant ? doubleQuantize(q.absmax, DOUBLE_QUANT_BLOCK_SIZE) : q.absmax;
    return new Int8Tensor(name, [...shape], q.codes, absmax, q.blockSize);
  }
  throw new Error(`Argument 'kind' passed to 'quantize' must be 'nf4' or 'int8', got ${String(kind)}`);
}

/**
 * The fp32 values of a frozen weight: dequantized for NF4 / int8, widened for 16-bit storage.
 * @param t any frozen weight
 * @param out optional destination of at least `product(t.shape)` values, reused to avoid garbage
 *   (only quantized tensors write into it directly; others are copied into it)
 * @example
 *   const w = dequantize(layer.q_proj); // Float32Array, [out, in] row-major
 */
export function dequantize(t: FrozenTensor, out?: Float32Array): Float32Array {
  if (t instanceof Nf4Tensor || t instanceof Int8Tensor) return t.toFloat32(out);
  const values = t.toFloat32();
  if (out === undefined) return values;
  if (out.length < values.length) {
    throw new Error(
      `Argument 'out' passed to 'dequantize' must hold at least ${values.length} values, got ${out.length}`,
    );
  }
  out.set(values);
  return out;
}

/**
 * Bytes a tensor of this shape takes once quantized (codes + all scales), without quantizing it;
 * equals the `byteLength` of what {@link quantize} returns.
 * @example
 *   quantizedByteLength([4096, 4096], 'nf4', true) / (4096 * 4096); // ~0.5157
 */
export function quantizedByteLength(shape: readonly number[], kind: QuantKind, doubleQuant: boolean): number {
  const size = shape.reduce((a, b) => a * b, 1);
  const codeBytes = kind === 'nf4' ? Math.ceil(size / 2) : size;
  const nBlocks = blockCount(size, kind === 'nf4' ? NF4_BLOCK_SIZE : INT8_BLOCK_SIZE);
  const scaleBytes = doubleQuant
    ? nBlocks + 4 * blockCount(nBlocks, DOUBLE_QUANT_BLOCK_SIZE) + 4
    : 4 * nBlocks;
  return codeBytes + scaleBytes;
}

// A NaN or infinity would poison a whole block's absmax; name the tensor and the first bad index.
function checkFinite(name: string, values: Float32Array): void {
  let probe = 0;
  for (let i = 0; i < values.length; i++) probe += values[i]! * 0; // NaN iff some value is NaN or ±Inf
  if (probe === 0) return;
  const i = values.findIndex((v) => !Number.isFinite(v));
  throw new MftError({
    where: name,
    message: `value ${values[i]} at flat index ${i} cannot be quantized`,
    fix: 'the checkpoint is corrupt or was saved after a diverged run; load it with quantization: none to inspect it, or use another checkpoint',
  });
}
