import type { ModelSpec } from './spec.js';

/** The seven projections of a decoder layer, in HF order (also the names LoRA can target). */
export const LINEAR_NAMES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

/** `[out, in]` of each projection of a decoder layer (HF's weight shapes). */
export function linearShapes(spec: ModelSpec): Record<LinearName, [number, number]> {
  const H = spec.hidden_size;
  const I = spec.intermediate_size;
  const q = spec.num_attention_heads * spec.head_dim;
  const kv = spec.num_key_value_heads * spec.head_dim;
  return {
    q_proj: [q, H],
    k_proj: [kv, H],
    v_proj: [kv, H],
    o_proj: [H, q],
    gate_proj: [I, H],
    up_proj: [I, H],
    down_proj: [H, I],
  };
}
