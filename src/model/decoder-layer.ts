/**
 * One decoder layer of Llama / Mistral / Qwen2, read top to bottom. The three architectures are the
 * same layer with spec flags: q/k/v (and for Llama o) biases, a per-layer sliding window (in the
 * mask, see attention.ts), and tied embeddings (outside the layer).
 *
 *   h   = x + o_proj(attention(rope(q_proj(norm1(x))), rope(k_proj(..)), v_proj(..)))
 *   out = h + down_proj(silu(gate_proj(norm2(h))) * up_proj(norm2(h)))
 *
 * References: transformers `modeling_llama.py` (LlamaDecoderLayer), nanoGPT's `Block`.
 */
import * as tf from '@tensorflow/tfjs';
import { type AttentionContext, attention } from './attention.js';
import { type BatchLayerLora, type LayerLora, linear } from './linear.js';
import type { ProjectionLayout } from './matmul-form.js';
import { rmsNorm } from './rms-norm.js';
import { applyRope } from './rope.js';
import type { ModelSpec } from './spec.js';
import { swiglu } from './swiglu.js';

/**
 * The fp32 tensors of one layer while it computes. Linear weights are TRANSPOSED to `W^T [in, out]`
 * (a plain matMul is the fast one on stock wasm, see linear.ts) unless `layout` is `out_in`: then
 * they are `W [out, in]`, the checkpoint layout (the shapes below are those of `in_out`).
 */
export interface LayerTensors {
  layout: ProjectionLayout;
  input_layernorm: tf.Tensor1D; // [hidden]
  post_attention_layernorm: tf.Tensor1D; // [hidden]
  q_proj: tf.Tensor2D; // W^T [hidden, n_heads * head_dim]
  k_proj: tf.Tensor2D; // W^T [hidden, kv_heads * head_dim]
  v_proj: tf.Tensor2D; // W^T [hidden, kv_heads * head_dim]
  o_proj: tf.Tensor2D; // W^T [n_heads * head_dim, hidden]
  gate_proj: tf.Tensor2D; // W^T [hidden, intermediate]
  up_proj: tf.Tensor2D; // W^T [hidden, intermediate]
  down_proj: tf.Tensor2D; // W^T [intermediate, hidden]
  q_bias?: tf.Tensor1D;
  k_bias?: tf.Tensor1D;
  v_bias?: tf.Tensor1D;
  o_bias?: tf.Tensor1D;
}

/** The names of a layer's tensors. */
export type LayerTensorName = Exclude<keyof LayerTensors, 'layout'>;

/**
 * Run layer `layerIndex` on `x`. Differentiable w.r.t. `x` and the LoRA A/B tensors (every op here
 * has a gradient on every backend: no gather, stridedSlice or einsum).
 * @param x `[B, T, hidden]`
 * @param w this layer's weights (`layerTensors(model, layerIndex)`)
 * @param ctx RoPE tables, masks and key/value source of this pass
 * @param lora adapters of this layer, by projection (or per batch row, when serving)
 * @returns `[B, T, hidden]`
 * @example
 *   const y = decoderLayer(model.spec, i, x, w, ctx, lora?.[i]); // [B, T, hidden]
 */
export function decoderLayer(
  spec: ModelSpec,
  layerIndex: number,
  x: tf.Tensor3D,
  w: LayerTensors,
  ctx: AttentionContext,
  lora?: LayerLora | BatchLayerLora,
): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, T] = x.shape;
    const H = spec.num_attention_heads;
    const KV = spec.num_key_value_heads;
    const D = spec.head_dim;
    const heads = (t: tf.Tensor3D, n: number): tf.Tensor4D =>
      tf.transpose(tf.reshape(t, [B, T, n, D]), [0, 2, 1, 3]);

    // attention block
    const a = rmsNorm(x, w.input_layernorm, spec.rms_norm_eps); // [B, T, hidden]
    const q = linear(a, w.q_proj, w.q_bias, lora?.q_proj, w.layout); // [B, T, H * D]
    const k = linear(a, w.k_proj, w.k_bias, lora?.k_proj, w.layout); // [B, T, KV * D]
    const v = linear(a, w.v_proj, w.v_bias, lora?.v_proj, w.layout); // [B, T, KV * D]
    const qh = applyRope(heads(q, H), ctx.cos, ctx.sin); // [B, H, T, D]
    const kh = applyRope(heads(k, KV), ctx.cos, ctx.sin); // [B, KV, T, D]
    const vh = heads(v, KV); // [B, KV, T, D]
    const kv = ctx.keysValues(layerIndex, kh, vh); // [B, KV, S, D] each (S = T, or cache + T)
    const att = attention(qh, kv.k, kv.v, ctx.mask(layerIndex)); // [B, H, T, D]
    const merged = tf.reshape(tf.transpose(att, [0, 2, 1, 3]), [B, T, H * D]); // [B, T, H * D]
    const o = linear(merged, w.o_proj, w.o_bias, lora?.o_proj, w.layout); // [B, T, hidden]
    const h = tf.add(x, o); // [B, T, hidden]  residual

    // MLP block (SwiGLU)
    const m = rmsNorm(h, w.post_attention_layernorm, spec.rms_norm_eps); // [B, T, hidden]
    const gate = linear(m, w.gate_proj, undefined, lora?.gate_proj, w.layout); // [B, T, intermediate]
    const up = linear(m, w.up_proj, undefined, lora?.up_proj, w.layout); // [B, T, intermediate]
    const act = swiglu(gate, up); // [B, T, intermediate]  silu(gate) * up
    const down = linear(act, w.down_proj, undefined, lora?.down_proj, w.layout); // [B, T, hidden]
    return tf.add(h, down) as tf.Tensor3D; // [B, T, hidden]  residual
  });
}
