/**
 * An independent float64 reference of the Llama / Mistral / Qwen2 decoder, written plainly with
 * loops over one row at a time, for tests. It shares no code with src/model: RoPE as rotations of
 * (i, i + D/2) pairs, the mask as explicit conditions, softmax in float64.
 */

/** The config fields the reference reads (HF names). */
export interface RefConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling?: {
    rope_type: 'linear' | 'llama3';
    factor: number;
    low_freq_factor?: number;
    high_freq_factor?: number;
    original_max_position_embeddings?: number;
  } | null;
  tie_word_embeddings: boolean;
  /** Per layer; null = full causal. */
  windows: (number | null)[];
}

export type RefWeights = Map<string, Float64Array>;

function w(weights: RefWeights, name: string): Float64Array {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return t;
}

/** y[t, o] = sum_i x[t, i] W[o, i] + b[o] */
function matmulT(
  x: Float64Array,
  T: number,
  inDim: number,
  W: Float64Array,
  outDim: number,
  b?: Float64Array,
) {
  const y = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = b ? (b[o] as number) : 0;
      for (let i = 0; i < inDim; i++) s += (x[t * inDim + i] as number) * (W[o * inDim + i] as number);
      y[t * outDim + o] = s;
    }
  }
  return y;
}

function rmsNormRef(x: Float64Array, T: number, H: number, g: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += (x[t * H + i] as number) ** 2;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = (x[t * H + i] as number) * r * (g[i] as number);
  }
  return y;
}

/** Frequency of pair i, following transformers' rope init functions. */
export function refFrequency(cfg: RefConfig, i: number): number {
  const D = cfg.head_dim;
  const base = cfg.rope_theta ** (-(2 * i) / D);
  const s = cfg.rope_scaling;
  if (!s) return base;
  if (s.rope_type === 'linear') return base / s.factor;
  const lo = s.low_freq_factor as number;
  const hi = s.high_freq_factor as number;
  const old = s.original_max_position_embeddings as number;
  const wavelen = (2 * Math.PI) / base;
  // where(wavelen > old/lo, base/factor, base), then smooth the medium band
  const scaled = wavelen > old / lo ? base / s.factor : base;
  const isMedium = !(wavelen < old / hi) && !(wavelen > old / lo);
  if (!isMedium) return scaled;
  const smooth = (old / wavelen - lo) / (hi - lo);
  return ((1 - smooth) * scaled) / s.factor + smooth * scaled;
}

/** Rotate each head's (i, i + D/2) pairs of a `[T, heads * D]` matrix by position * freq_i. */
function rope(x: Float64Array, T: number, heads: number, cfg: RefConfig, positions: number[]): void {
  const D = cfg.head_dim;
  const half = D / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const o = t * heads * D + h * D;
      for (let i = 0; i < half; i++) {
        const a = (positions[t] as number) * refFrequency(cfg, i);
        const x1 = x[o + i] as number;
        const x2 = x[o + i + half] as number;
        x[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
        x[o + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    }
  }
}

/** May query t see key s? causal, same segment, within the layer's window. */
export function refVisible(t: number, s: number, segments: number[], window: number | null): boolean {
  return s <= t && segments[s] === segments[t] && (window === null || t - s < window);
}

/**
 * Logits `[T, vocab]` of one row.
 * @param segments document index per token (packing); positions restart per document
 */
export function referenceLogits(
  cfg: RefConfig,
  weights: RefWeights,
  ids: number[],
  segments: number[] = ids.map(() => 0),
  positions: number[] = ids.map((_, t) => t),
  lora?: Map<string, { A: Float64Array; B: Float64Array; r: number; scale: number }>,
): Float64Array {
  const T = ids.length;
  const H = cfg.hidden_size;
  const D = cfg.head_dim;
  const nH = cfg.num_attention_heads;
  const nKV = cfg.num_key_value_heads;
  const I = cfg.intermediate_size;
  const emb = w(weights, 'model.embed_tokens.weight');
  let x = new Float64Array(T * H);
  ids.forEach((id, t) => {
    x.set(emb.subarray(id * H, (id + 1) * H), t * H);
  });

  const proj = (name: string, input: Float64Array, inDim: number, outDim: number, layer: string) => {
    const y = matmulT(
      input,
      T,
      inDim,
      w(weights, `${layer}.${name}.weight`),
      outDim,
      weights.get(`${layer}.${name}.bias`),
    );
    const l = lora?.get(`${layer}.${name}`);
    if (l) {
      const down = matmulT(input, T, inDim, l.A, l.r);
      const up = matmulT(down, T, l.r, l.B, outDim);
      for (let k = 0; k < y.length; k++) y[k] = (y[k] as number) + l.scale * (up[k] as number);
    }
    return y;
  };

  for (let layer = 0; layer < cfg.num_hidden_layers; layer++) {
    const p = `model.layers.${layer}`;
    const a = rmsNormRef(x, T, H, w(weights, `${p}.input_layernorm.weight`), cfg.rms_norm_eps);
    const q = proj('q_proj', a, H, nH * D, `${p}.self_attn`);
    const k = proj('k_proj', a, H, nKV * D, `${p}.self_attn`);
    const v = proj('v_proj', a, H, nKV * D, `${p}.self_attn`);
    rope(q, T, nH, cfg, positions);
    rope(k, T, nKV, cfg, positions);
    const att = new Float64Array(T * nH * D);
    const window = cfg.windows[layer] ?? null;
    for (let h = 0; h < nH; h++) {
      const kvh = Math.floor(h / (nH / nKV)); // HF repeat_kv: query head h uses kv head h // n_rep
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let s = 0; s < T; s++) {
          if (!refVisible(t, s, segments, window)) {
            scores.push(Number.NEGATIVE_INFINITY);
            continue;
          }
          let dot = 0;
          for (let d = 0; d < D; d++)
            dot += (q[t * nH * D + h * D + d] as number) * (k[s * nKV * D + kvh * D + d] as number);
          scores.push(dot / Math.sqrt(D));
        }
        const m = Math.max(...scores);
        const e = scores.map((sc) => Math.exp(sc - m));
        const z = e.reduce((acc, val) => acc + val, 0);
        for (let s = 0; s < T; s++) {
          const pr = (e[s] as number) / z;
          if (pr === 0) continue;
          for (let d = 0; d < D; d++)
            att[t * nH * D + h * D + d] += pr * (v[s * nKV * D + kvh * D + d] as number);
        }
      }
    }
    const o = proj('o_proj', att, nH * D, H, `${p}.self_attn`);
    const h1 = x.map((val, idx) => val + (o[idx] as number));
    const m = rmsNormRef(h1, T, H, w(weights, `${p}.post_attention_layernorm.weight`), cfg.rms_norm_eps);
    const g = proj('gate_proj', m, H, I, `${p}.mlp`);
    const u = proj('up_proj', m, H, I, `${p}.mlp`);
    const act = g.map((gv, idx) => (gv / (1 + Math.exp(-gv))) * (u[idx] as number));
    const dn = proj('down_proj', act, I, H, `${p}.mlp`);
    x = h1.map((val, idx) => val + (dn[idx] as number));
  }
  const n = rmsNormRef(x, T, H, w(weights, 'model.norm.weight'), cfg.rms_norm_eps);
  const head = cfg.tie_word_embeddings ? emb : w(weights, 'lm_head.weight');
  return matmulT(n, T, H, head, cfg.vocab_size);
}

/** Summed next-token cross-entropy of float64 logits `[T, V]`; label -100 skipped. */
export function referenceLossSum(
  logits: Float64Array,
  V: number,
  labels: number[],
): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  labels.forEach((label, t) => {
    if (label === -100) return;
    const row = logits.subarray(t * V, (t + 1) * V);
    const m = Math.max(...row);
    let z = 0;
    for (const val of row) z += Math.exp(val - m);
    sum += m + Math.log(z) - (row[label] as number);
    count++;
  });
  return { sum, count };
}
