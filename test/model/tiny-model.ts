/**
 * Tiny random Llama / Mistral / Qwen2 checkpoints for tests: a config.json and a model.safetensors
 * in a temp dir (so loadModel is exercised), plus the same weights as float64 for the reference.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../src/util/index.js';
import { writeSafetensors } from '../../src/weights/index.js';
import { makeTempDir } from '../helpers/tmp-dir.js';
import type { RefConfig, RefWeights } from './reference-decoder.js';

export interface TinyModel {
  dir: string;
  /** The config.json written. */
  config: Record<string, unknown>;
  /** What the reference needs. */
  ref: RefConfig;
  weights: RefWeights;
}

export interface TinyOptions {
  architecture?: 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';
  vocab?: number;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  /** Written as config.json head_dim when set. */
  headDim?: number;
  ropeTheta?: number;
  ropeScaling?: RefConfig['rope_scaling'];
  tie?: boolean;
  /** Llama attention_bias (q, k, v and o biases). */
  attentionBias?: boolean;
  /** Extra config.json keys (sliding_window, use_sliding_window, ...). */
  extra?: Record<string, unknown>;
  /** The windows the reference applies per layer (what the extra keys should mean). */
  windows?: (number | null)[];
  seed?: number;
  /** Scale of the random weights (larger: sharper attention, less uniform logits). */
  scale?: number;
}

/** Write a random model; returns its dir, config and float64 weights. */
export function writeTinyModel(opts: TinyOptions = {}): TinyModel {
  const arch = opts.architecture ?? 'LlamaForCausalLM';
  const V = opts.vocab ?? 50;
  const H = opts.hidden ?? 16;
  const I = opts.intermediate ?? 24;
  const L = opts.layers ?? 2;
  const nH = opts.heads ?? 4;
  const nKV = opts.kvHeads ?? 2;
  const D = opts.headDim ?? H / nH;
  const tie = opts.tie ?? false;
  const scale = opts.scale ?? 0.5;
  const rng = new Rng(opts.seed ?? 1);
  const qkvBias = arch === 'Qwen2ForCausalLM' || opts.attentionBias === true;
  const oBias = arch === 'LlamaForCausalLM' && opts.attentionBias === true;

  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  const weights: RefWeights = new Map();
  const add = (name: string, shape: number[], kind: 'w' | 'norm' | 'bias') => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = rng.next() * 2 - 1;
      data[i] =
        kind === 'norm'
          ? 1 + 0.2 * u
          : kind === 'bias'
            ? 0.3 * u
            : ((scale * u) / Math.sqrt(shape[1] ?? 1)) * 2;
    }
    tensors.push({ name, shape, data });
    weights.set(name, Float64Array.from(data));
  };
  add('model.embed_tokens.weight', [V, H], 'w');
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [H], 'norm');
    add(`${p}.self_attn.q_proj.weight`, [nH * D, H], 'w');
    add(`${p}.self_attn.k_proj.weight`, [nKV * D, H], 'w');
    add(`${p}.self_attn.v_proj.weight`, [nKV * D, H], 'w');
    add(`${p}.self_attn.o_proj.weight`, [H, nH * D], 'w');
    if (qkvBias) {
      add(`${p}.self_attn.q_proj.bias`, [nH * D], 'bias');
      add(`${p}.self_attn.k_proj.bias`, [nKV * D], 'bias');
      add(`${p}.self_attn.v_proj.bias`, [nKV * D], 'bias');
    }
    if (oBias) add(`${p}.self_attn.o_proj.bias`, [H], 'bias');
    add(`${p}.post_attention_layernorm.weight`, [H], 'norm');
    add(`${p}.mlp.gate_proj.weight`, [I, H], 'w');
    add(`${p}.mlp.up_proj.weight`, [I, H], 'w');
    add(`${p}.mlp.down_proj.weight`, [H, I], 'w');
  }
  add('model.norm.weight', [H], 'norm');
  if (!tie) add('lm_head.weight', [V, H], 'w');

  // The fields config.json and the reference share.
  const sizes = {
    vocab_size: V,
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: L,
    num_attention_heads: nH,
    num_key_value_heads: nKV,
    rms_norm_eps: 1e-5,
    rope_theta: opts.ropeTheta ?? 10000,
    tie_word_embeddings: tie,
  };
  const config: Record<string, unknown> = {
    architectures: [arch],
    ...sizes,
    max_position_embeddings: 256,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
    ...(opts.headDim !== undefined ? { head_dim: opts.headDim } : {}),
    ...(opts.ropeScaling ? { rope_scaling: opts.ropeScaling } : {}),
    ...(arch === 'LlamaForCausalLM' ? { attention_bias: opts.attentionBias === true } : {}),
    ...opts.extra,
  };
  const dir = makeTempDir('tiny');
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeSafetensors(
    join(dir, 'model.safetensors'),
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: t.data })),
    { format: 'pt' },
  );
  const ref: RefConfig = {
    ...sizes,
    head_dim: D,
    rope_scaling: opts.ropeScaling ?? null,
    windows: opts.windows ?? new Array(L).fill(null),
  };
  return { dir, config, ref, weights };
}
