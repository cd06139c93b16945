/**
 * What a loaded base model is: its spec and frozen weights (outside tfjs, in their storage format),
 * and `layerTensors`, which turns one layer into fp32 tfjs tensors while that layer computes.
 */
import * as tf from '@tensorflow/tfjs';
import type { FrozenTensor } from '../weights/frozen-tensor.js';
import { StoredTensor } from '../weights/stored-tensor.js';
import type { LayerTensors } from './decoder-layer.js';
import { projectionLayout } from './matmul-form.js';
import type { ModelSpec } from './spec.js';

/** The frozen weights of one decoder layer (HF names; linear weights `[out, in]`). */
export interface LayerWeights {
  readonly input_layernorm: FrozenTensor;
  readonly post_attention_layernorm: FrozenTensor;
  readonly q_proj: FrozenTensor;
  readonly k_proj: FrozenTensor;
  readonly v_proj: FrozenTensor;
  readonly o_proj: FrozenTensor;
  readonly gate_proj: FrozenTensor;
  readonly up_proj: FrozenTensor;
  readonly down_proj: FrozenTensor;
  /** Qwen2, or Llama with attention_bias. */
  readonly q_bias?: FrozenTensor;
  readonly k_bias?: FrozenTensor;
  readonly v_bias?: FrozenTensor;
  /** Llama with attention_bias only. */
  readonly o_bias?: FrozenTensor;
}

/** A base model ready to run: spec plus frozen weights. */
export interface LoadedModel {
  readonly dir: string;
  readonly spec: ModelSpec;
  /** `[vocab, hidden]`. */
  readonly embed_tokens: FrozenTensor;
  /** Final RMSNorm `[hidden]`. */
  readonly norm: FrozenTensor;
  /** `[vocab, hidden]`; the same object as `embed_tokens` when `tie_word_embeddings`. */
  readonly lm_head: FrozenTensor;
  readonly layers: readonly LayerWeights[];
  /** Hash of the spec, recorded by adapters to check they meet the same base. */
  readonly configHash: string;
  /** Every id that ends generation: `eos_token_id` of config.json and of generation_config.json. */
  readonly stopTokenIds: readonly number[];
}

/**
 * The fp32 values of `t` to make a tensor from: fp32 storage as it is (a tensor copies it, or on
 * the cpu backend reads it in place; tensors are never written), else a widened / dequantized copy.
 * Saves a copy of every fp32 weight each time a layer computes.
 */
export function uploadValues(t: FrozenTensor): Float32Array {
  return t instanceof StoredTensor && t.storage === 'f32' ? (t.data as Float32Array) : t.toFloat32();
}

/**
 * The fp32 tfjs tensors of layer `i` (dequantized / widened now, linear weights transposed to
 * `W^T [in, out]`, or as stored where the kernels take the transpose flag: `projectionLayout`).
 * The caller disposes them
 * (`disposeLayerTensors`, or a surrounding `tf.tidy`).
 * @example
 *   const w = layerTensors(model, i);
 *   try { x = decoderLayer(model.spec, i, x, w, ctx); } finally { disposeLayerTensors(w); }
 */
export function layerTensors(model: LoadedModel, i: number): LayerTensors {
  const l = model.layers[i];
  if (!l)
    throw new Error(`Argument 'i' passed to 'layerTensors' must be in [0, ${model.layers.length}), got ${i}`);
  const t1 = (t: FrozenTensor) => tf.tensor1d(uploadValues(t));
  const layout = projectionLayout();
  const t2 = (t: FrozenTensor) => {
    const stored = () => tf.tensor2d(uploadValues(t), t.shape as [number, number]); // [out, in]
    return layout === 'out_in' ? stored() : tf.tidy(() => tf.transpose(stored()));
  };
  const w: LayerTensors = {
    layout,
    input_layernorm: t1(l.input_layernorm),
    post_attention_layernorm: t1(l.post_attention_layernorm),
    q_proj: t2(l.q_proj),
    k_proj: t2(l.k_proj),
    v_proj: t2(l.v_proj),
    o_proj: t2(l.o_proj),
    gate_proj: t2(l.gate_proj),
    up_proj: t2(l.up_proj),
    down_proj: t2(l.down_proj),
  };
  if (l.q_bias) w.q_bias = t1(l.q_bias);
  if (l.k_bias) w.k_bias = t1(l.k_bias);
  if (l.v_bias) w.v_bias = t1(l.v_bias);
  if (l.o_bias) w.o_bias = t1(l.o_bias);
  return w;
}

/** Dispose the tensors `layerTensors` returned. */
export function disposeLayerTensors(w: LayerTensors): void {
  tf.dispose(Object.values(w).filter((t): t is tf.Tensor => t instanceof tf.Tensor));
}
