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
