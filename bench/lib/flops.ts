/**
 * Model FLOPs of the work the benchmark times, counted from the shapes (a multiply-add is 2 FLOPs).
 * MFU divides these by the time taken and by the backend's matmul rate, so only useful work counts:
 * the recompute of gradient checkpointing is counted (it is real work the step must do), the full
 * square attention matrix is counted (the causal half is computed too, then masked).
 *
 * Per token, with N = frozen matmul parameters (the seven projections of every layer plus lm_head;
 * the embedding is a row lookup, no FLOPs), T = sequence length, d = query width
 * (num_attention_heads * head_dim), L = layers, and LoRA rank r on projections of shape in -> out:
 *
 *   forward       2 N                     (x W^T)
 *   input grad    2 N                     (dy W; the base is frozen, so no weight gradient)
 *   attention     4 T d per layer forward (Q K^T and P V), 8 T d per layer backward
 *   LoRA          2 r (in + out) forward, 4 r (in + out) backward (input grad + dA, dB), per adapter
 *   recompute     the layers' forward again when checkpointing (lm_head is not recomputed)
 */
import { LINEAR_NAMES, type LinearName, linearShapes, type ModelSpec } from '../../src/model/index.js';

/** The one-line statement of the formula printed with the figures. */
export const FLOP_FORMULA =
  'train step FLOPs = tokens * [ (1 + c) * F_fwd_layers + F_bwd_layers + 4 V d_model ], c = 1 with checkpointing (recompute) else 0; ' +
  'F_fwd_layers = L * (2 N_layer + 4 T d + 2 r S), F_bwd_layers = L * (2 N_layer + 8 T d + 4 r S); ' +
  'N_layer = frozen projection params per layer, S = sum of (in + out) over LoRA-adapted projections, ' +
  'd = heads * head_dim, T = sequence length, V = vocab; embedding lookup = 0 FLOPs';

/** `[in, out]` of each projection of a layer. */
export function projectionShapes(spec: ModelSpec): Record<LinearName, [number, number]> {
  const shapes = linearShapes(spec);
  return Object.fromEntries(LINEAR_NAMES.map((n) => [n, [shapes[n][1], shapes[n][0]]])) as Record<
    LinearName,
    [number, number]
  >;
}

/** Parameter counts of the base model. */
export interface ParamCounts {
  /** Projection weights of one layer. */
  perLayer: number;
  /** lm_head (the embedding again when tied). */
  head: number;
  embedding: number;
  /** Norm weights and biases (no matmul FLOPs). */
  other: number;
  /** Distinct stored parameters (a tied lm_head counted once). */
  total: number;
  /** Parameters that take part in matmuls per token: L * perLayer + head. */
  matmul: number;
}

/** Parameter counts from the spec. */
export function paramCounts(spec: ModelSpec): ParamCounts {
  const shapes = projectionShapes(spec);
  const perLayer = LINEAR_NAMES.reduce((s, n) => s + shapes[n][0] * shapes[n][1], 0);
  const embedding = spec.vocab_size * spec.hidden_size;
  const head = embedding;
  const q = spec.num_attention_heads * spec.head_dim;
  const kv = spec.num_key_value_heads * spec.head_dim;
  const biases = spec.attention_bias ? q + 2 * kv : 0;
  const other = spec.num_hidden_layers * (2 * spec.hidden_size + biases) + spec.hidden_size;
  const L = spec.num_hidden_layers;
  return {
    perLayer,
    head,
    embedding,
    other,
    total: L * perLayer + embedding + (spec.tie_word_embeddings ? 0 : head) + other,
    matmul: L * perLayer + head,
  };
}

/** What one training micro-batch does. */
export interface StepShape {
  /** Positions in the micro-batch (batch * seqLen). */
  tokens: number;
  seqLen: number;
  /** LoRA rank (0: no adapters). */
  r: number;
  targets: readonly LinearName[];
  checkpointing: boolean;
}

/** FLOPs of one step, by part. */
export interface StepFlops {
  forward: number;
  recompute: number;
  backward: number;
  head: number;
  total: number;
}

function layerTerms(spec: ModelSpec, seqLen: number, r: number, targets: readonly LinearName[]) {
  const shapes = projectionShapes(spec);
  const d = spec.num_attention_heads * spec.head_dim;
  const S = targets.reduce((s, n) => s + shapes[n][0] + shapes[n][1], 0);
  const nLayer = paramCounts(spec).perLayer;
  const L = spec.num_hidden_layers;
  return {
    fwd: L * (2 * nLayer + 4 * seqLen * d + 2 * r * S),
    bwd: L * (2 * nLayer + 8 * seqLen * d + 4 * r * S),
  };
}

/** FLOPs of `lossAndGrads` on one micro-batch (forward, head, backward, recompute). */
export function trainStepFlops(spec: ModelSpec, s: StepShape): StepFlops {
  const { fwd, bwd } = layerTerms(spec, s.seqLen, s.r, s.targets);
  const headPerToken = 2 * spec.vocab_size * spec.hidden_size;
  const forward = s.tokens * fwd;
  const recompute = s.checkpointing ? forward : 0;
  const backward = s.tokens * bwd;
  const head = s.tokens * 2 * headPerToken; // logits forward + dh backward
  return { forward, recompute, backward, head, total: forward + recompute + backward + head };
}

/** FLOPs of a forward pass (eval) over `tokens` positions in rows of `seqLen`. */
export function forwardFlops(
  spec: ModelSpec,
  tokens: number,
  seqLen: number,
  r = 0,
  targets: readonly LinearName[] = [],
): number {
  const { fwd } = layerTerms(spec, seqLen, r, targets);
  return tokens * (fwd + 2 * spec.vocab_size * spec.hidden_size);
}
