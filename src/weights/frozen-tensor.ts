/**
 * A frozen base-model weight, kept outside tfjs in its storage format (tfjs has only float32,
 * int32 and bool, and the wasm heap stops at 4 GiB). It becomes an fp32 tensor only while the
 * layer that uses it computes.
 */
export type StorageDtype = 'f32' | 'bf16' | 'f16' | 'nf4' | 'int8';

export interface FrozenTensor {
  /** HF weight name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** HF layout: linear weights are `[out, in]`. */
  readonly shape: readonly number[];
  readonly storage: StorageDtype;
  /** Bytes held, including every scale and codebook index. */
  readonly byteLength: number;
  /** A new fp32 copy of the values (dequantized / widened). */
  toFloat32(): Float32Array;
}
