/**
 * A frozen weight kept in a float storage dtype outside tfjs: fp32 as a Float32Array, bf16 / f16
 * as raw 16-bit words in a Uint16Array (half the memory of fp32). Widened to fp32 on use.
 */
import { fail } from '../util/index.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './dtype.js';
import type { FrozenTensor } from './frozen-tensor.js';
import type { TensorData } from './safetensors.js';

export type FloatStorage = 'f32' | 'bf16' | 'f16';

/** A float weight in its storage dtype; implements the FrozenTensor contract. */
export class StoredTensor implements FrozenTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly storage: FloatStorage;
  /** fp32 values (storage 'f32') or raw 16-bit words (storage 'bf16' / 'f16'). */
  readonly data: Float32Array | Uint16Array;

  constructor(
    name: string,
    shape: readonly number[],
    storage: FloatStorage,
    data: Float32Array | Uint16Array,
  ) {
    const numel = shape.reduce((a, b) => a * b, 1);
    if (data.length !== numel) {
      throw new Error(
        `StoredTensor: "${name}" has ${data.length} values, shape [${shape.join(', ')}] needs ${numel}`,
      );
    }
    if ((storage === 'f32') !== data instanceof Float32Array) {
      throw new Error(`StoredTensor: "${name}" storage ${storage} does not match a ${data.constructor.name}`);
    }
    this.name = name;
    this.shape = Object.freeze([...shape]);
    this.storage = storage;
    this.data = data;
  }

  /**
   * Build from a tensor read from a checkpoint, converting to `storage` on the way in.
   * @param name the HF weight name (named in errors)
   * @param t the tensor as read (F32, BF16 or F16)
   * @param storage target storage; default: the file's own dtype. Narrowing rounds to nearest even.
   * @example const w = StoredTensor.fromData(name, ckpt.read(name), 'bf16');
   */
  static fromData(name: string, t: TensorData, storage?: FloatStorage): StoredTensor {
    const own: FloatStorage | null =
      t.dtype === 'F32' ? 'f32' : t.dtype === 'BF16' ? 'bf16' : t.dtype === 'F16' ? 'f16' : null;
    if (own === null) {
      fail(
        name,
        `weight has dtype ${t.dtype}; only F32, BF16 and F16 weights are supported`,
        'use a float checkpoint',
      );
    }
    const target = storage ?? own;
    const data = t.data as Float32Array | Uint16Array;
    if (target === own) return new StoredTensor(name, t.shape, target, data);
    const f32 =
      own === 'f32'
        ? (data as Float32Array)
        : own === 'bf16'
          ? bf16ToF32(data as Uint16Array)
          : f16ToF32(data as Uint16Array);
    const converted = target === 'f32' ? f32 : target === 'bf16' ? f32ToBf16(f32) : f32ToF16(f32, name);
    return new StoredTensor(name, t.shape, target, converted);
  }

  /** Bytes held by the values. */
  get byteLength(): number {
    return this.data.byteLength;
  }

  /** A new fp32 copy of all values. */
  toFloat32(): Float32Array {
    return widen(this.storage, this.data);
  }

  /**
   * A new fp32 copy of rows `[start, start + count)` of a 2-D tensor (e.g. embedding rows),
   * without widening the rest of the tensor.
   */
  rowsToFloat32(start: number, count = 1): Float32Array {
    if (this.shape.length !== 2) throw new Error(`StoredTensor.rowsToFloat32: "${this.name}" is not 2-D`);
    const [rows, cols] = this.shape as [number, number];
    if (start < 0 || count < 0 || start + count > rows) {
      throw new Error(
        `StoredTensor.rowsToFloat32: rows [${start}, ${start + count}) outside "${this.name}" (${rows} rows)`,
      );
    }
    return widen(this.storage, this.data.subarray(start * cols, (start + count) * cols));
  }
}

function widen(storage: FloatStorage, data: Float32Array | Uint16Array): Float32Array {
  if (storage === 'f32') return new Float32Array(data as Float32Array);
  return storage === 'bf16' ? bf16ToF32(data as Uint16Array) : f16ToF32(data as Uint16Array);
}
