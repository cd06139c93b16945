/**
 * `config.json` → `ModelSpec`: the hyperparameters of a Llama / Mistral / Qwen2 checkpoint, with
 * Hugging Face field names and every default filled here once, so the rest of the code never checks
 * for a missing field. A field that would change the maths and is not implemented is refused
 * (MftError, exit 2), never ignored.
 *
 * References: transformers `LlamaConfig`, `MistralConfig`, `Qwen2Config` and
 * `modeling_rope_utils.py` (`_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MftError, type Problem } from '../util/index.js';

export const SUPPORTED_ARCHITECTURES = [
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

/** RoPE frequency scaling (`rope_scaling` in config.json); `null` = plain RoPE. */
export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | {
      rope_type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    };

/** The model hyperparameters, HF names, defaults filled. */
export interface ModelSpec {
  readonly architecture: Architecture;
  readonly vocab_size: number;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  /** Key/value heads (GQA); defaults to `num_attention_heads`. */
  readonly num_key_value_heads: number;
  /** Width of one head; sets the q/k/v/o shapes and the 1/sqrt(head_dim) attention scale. */
  readonly head_dim: number;
  readonly max_position_embeddings: number;
  readonly rms_norm_eps: number;
  readonly rope_theta: number;
  readonly rope_scaling: RopeScaling | null;
  /** No `lm_head.weight`: the output projection is the embedding matrix. */
  readonly tie_word_embeddings: boolean;
  /** q/k/v projections carry biases (Qwen2 always; Llama when `attention_bias`). */
  readonly attention_bias: boolean;
  /** o_proj carries a bias too (Llama's `attention_bias`; never Qwen2). */
  readonly o_proj_bias: boolean;
  /** Look-back W per layer (query i sees keys j with i - W < j <= i); `null` = full causal. */
  readonly sliding_window: readonly (number | null)[];
  readonly bos_token_id: number | null;
  /** Every id that ends generation (config.json may give one id or a list). */
  readonly eos_token_id: readonly number[];
  /** Storage dtype of the checkpoint: 'float32' | 'bfloat16' | 'float16'. */
  readonly torch_dtype: string;
}

type Json = Record<string, unknown>;

/** Read and validate `<dir>/config.json`. */
export function readModelSpec(dir: string): ModelSpec {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) {
    throw new MftError({
      where: file,
      message: 'no config.json: not a Hugging Face model directory',
      fix: 'point --model / base_model at a folder with config.json and model.safetensors',
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new MftError({ where: file, message: `not valid JSON: ${(err as Error).message}` });
  }
  return parseModelSpec(json, file);
}

/**
 * Turn a parsed config.json into a `ModelSpec`, collecting every problem into one MftError.
 * @param config the parsed JSON object
 * @param where the file name used in error messages
 */
export function parseModelSpec(config: unknown, where = 'config.json'): ModelSpec {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new MftError({ where, message: 'config.json must hold a JSON object' });
  }
  const c = config as Json;
  const problems: Problem[] = [];
  const bad = (key: string, message: string, fix?: string) =>
    problems.push({ where, message: `${key}: ${message}`, fix });

  const architecture = readArchitecture(c, bad);
  const int = (key: string, fallback?: number): number => {
    const v = c[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      bad(key, 'missing', 'config.json of a Llama / Mistral / Qwen2 model has this field');
      return 1;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      bad(key, `expected a positive integer, got ${JSON.stringify(v)}`);
      return 1;
    }
    return v;
  };
  const num = (key: string, fallback: number, source: Json = c): number => {
    const v = source[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      bad(key, `expected a positive number, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') {
      bad(key, `expected true or false, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  };

  const vocab_size = int('vocab_size');
  const hidden_size = int('hidden_size');
  const intermediate_size = int('intermediate_size');
  const num_hidden_layers = int('num_hidden_layers');
  const num_attention_heads = int('num_attention_heads');
  const num_key_value_heads = int('num_key_value_heads', num_attention_heads);
  if (num_attention_heads % num_key_value_heads !== 0) {
    bad(
      'num_key_value_heads',
      `${num_key_value_heads} does not divide num_attention_heads ${num_attention_heads}`,
    );
  }
  const defaultHeadDim = Math.floor(hidden_size / num_attention_heads);
  if (c['head_dim'] == null && hidden_size % num_attention_heads !== 0) {
    bad('hidden_size', `${hidden_size} is not a multiple of num_attention_heads ${num_attention_heads}`);
  }
  const head_dim = int('head_dim', defaultHeadDim);
  if (head_dim % 2 !== 0) bad('head_dim', `RoPE needs an even head_dim, got ${head_dim}`);
  const defaultMaxPos = { LlamaForCausalLM: 2048, MistralForCausalLM: 4096 * 32, Qwen2ForCausalLM: 32768 };
  const max_position_embeddings = int('max_position_embeddings', defaultMaxPos[architecture]);
  const rms_norm_eps = num('rms_norm_eps', 1e-6);

  // transformers v5 moves rope_theta / rope_scaling into one `rope_parameters` object.
  const ropeParams = isObject(c['rope_parameters']) ? (c['rope_parameters'] as Json) : undefined;
  const rope_theta =
    ropeParams?.['rope_theta'] != null ? num('rope_theta', 10000, ropeParams) : num('rope_theta', 10000);
  const rope_scaling = readRopeScaling(
    ropeParams ?? c['rope_scaling'],
    ropeParams ? 'rope_parameters' : 'rope_scaling',
    bad,
  );

  const tie_word_embeddings = bool('tie_word_embeddings', false);
  let attention_bias = false;
  let o_proj_bias = false;
  if (architecture === 'LlamaForCausalLM') {
    // LlamaAttention: bias=config.attention_bias on q, k, v AND o.
    attention_bias = bool('attention_bias', false);
    o_proj_bias = attention_bias;
  } else if (architecture === 'Qwen2ForCausalLM') {
    // Qwen2Attention: q/k/v always have a bias, o_proj never.
    attention_bias = true;
  }
  const sliding_window = readSlidingWindow(c, architecture, num_hidden_layers, bad);

  refuseUnimplemented(c, bad);

  const bos_token_id = readTokenId(c['bos_token_id'], 'bos_token_id', bad)[0] ?? null;
  const eos_token_id = readTokenId(c['eos_token_id'], 'eos_token_id', bad);
  const dtype = c['torch_dtype'] ?? c['dtype'] ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') {
    bad(
      'torch_dtype',
      `unsupported dtype ${JSON.stringify(dtype)}`,
      'use float32, bfloat16 or float16 weights',
    );
  }
  if (problems.length > 0) throw new MftError(problems);

  return Object.freeze({
    architecture,
    vocab_size,
    hidden_size,
    intermediate_size,
    num_hidden_layers,
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    max_position_embeddings,
    rms_norm_eps,
    rope_theta,
    rope_scaling,
    tie_word_embeddings,
    attention_bias,
    o_proj_bias,
    sliding_window: Object.freeze(sliding_window),
    bos_token_id,
    eos_token_id: Object.freeze(eos_token_id),
    torch_dtype: String(dtype),
  });
}

/**
 * The ids that end generation according to `<dir>/generation_config.json` (its `eos_token_id`: one
 * id or a list, as Hugging Face `generate` reads it; chat models list their end-of-turn token
 * there); [] when the file is absent or names none.
 */
export function readGenerationEosIds(dir: string): number[] {
  const file = join(dir, 'generation_config.json');
  if (!existsSync(file)) return [];
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new MftError({ where: file, message: `not valid JSON: ${(err as Error).message}` });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new MftError({ where: file, message: 'must hold a JSON object' });
  }
  const problems: Problem[] = [];
  const ids = readTokenId((json as Json)['eos_token_id'], 'eos_token_id', (key, message) =>
    problems.push({ where: file, message: `${key}: ${message}`, fix: 'fix the id, or delete the file' }),
  );
  if (problems.length > 0) throw new MftError(problems);
  return ids;
}

/** A short stable hash of the spec (what an adapter records to check it meets the same base). */
export function specHash(spec: ModelSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex').slice(0, 16);
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObject(v)) {
    const o = v as Json;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

type Bad = (key: string, message: string, fix?: string) => void;

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readArchitecture(c: Json, bad: Bad): Architecture {
  const list = c['architectures'];
  const supported = SUPPORTED_ARCHITECTURES.join(', ');
  if (!Array.isArray(list) || list.length === 0) {
    // Some configs only carry model_type.
    const byType: Record<string, Architecture> = {
      llama: 'LlamaForCausalLM',
      mistral: 'MistralForCausalLM',
      qwen2: 'Qwen2ForCausalLM',
    };
    const found = typeof c['model_type'] === 'string' ? byType[c['model_type']] : undefined;
    if (found) return found;
    bad('architectures', `missing; mft supports ${supported}`);
    return 'LlamaForCausalLM';
  }
  const name = list[0];
  if (!SUPPORTED_ARCHITECTURES.includes(name as Architecture)) {
    bad(
      'architectures',
      `${JSON.stringify(name)} is not supported; mft supports ${supported}`,
      'use a Llama, Mistral or Qwen2 checkpoint',
    );
    return 'LlamaForCausalLM';
  }
  return name as Architecture;
}

function readRopeScaling(v: unknown, key: string, bad: Bad): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) {
    bad(key, `expected an object or null, got ${JSON.stringify(v)}`);
    return null;
  }
  const r = v as Json;
  const type = r['rope_type'] ?? r['type'] ?? 'default';
  const pos = (name: string, fallback?: number): number => {
    const x = r[name] ?? fallback;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) {
      bad(`${key}.${name}`, `expected a positive number, got ${JSON.stringify(r[name])}`);
      return 1;
    }
    return x;
  };
  if (type === 'default') return null;
  if (type === 'linear') return { rope_type: 'linear', factor: pos('factor') };
  if (type === 'llama3') {
    const s: RopeScaling = {
      rope_type: 'llama3',
      factor: pos('factor'),
      low_freq_factor: pos('low_freq_factor'),
      high_freq_factor: pos('high_freq_factor'),
      original_max_position_embeddings: pos('original_max_position_embeddings'),
    };
    if (s.high_freq_factor <= s.low_freq_factor) {
      bad(`${key}.high_freq_factor`, 'must be greater than low_freq_factor');
    }
    return s;
  }
  bad(
    `${key}.rope_type`,
    `${JSON.stringify(type)} is not implemented (mft implements linear and llama3)`,
    'use a checkpoint with plain, linear or llama3 RoPE scaling',
  );
  return null;
}

function readSlidingWindow(c: Json, arch: Architecture, layers: number, bad: Bad): (number | null)[] {
  const full = new Array<number | null>(layers).fill(null);
  const w = c['sliding_window'];
  const windowValue = (fallback: number | null): number | null => {
    if (w === undefined) return fallback;
    if (w === null) return null;
    if (typeof w !== 'number' || !Number.isInteger(w) || w <= 0) {
      bad('sliding_window', `expected a positive integer or null, got ${JSON.stringify(w)}`);
      return null;
    }
    return w;
  };
  if (arch === 'LlamaForCausalLM') return full;
  if (arch === 'MistralForCausalLM') {
    // MistralConfig's default sliding_window is 4096 when the key is absent.
    const W = windowValue(4096);
    return full.fill(W);
  }
  // Qwen2: the window applies only with use_sliding_window, to layers >= max_window_layers,
  // unless config.json lists layer_types explicitly (newer transformers).
  const use = c['use_sliding_window'] === true;
  const W = use ? windowValue(4096) : null;
  const types = c['layer_types'];
  if (Array.isArray(types)) {
    if (types.length !== layers) {
      bad('layer_types', `has ${types.length} entries, num_hidden_layers is ${layers}`);
      return full;
    }
    return types.map((t, i) => {
      if (t === 'full_attention') return null;
      if (t === 'sliding_attention') return W;
      bad(`layer_types[${i}]`, `unknown layer type ${JSON.stringify(t)}`);
      return null;
    });
  }
  const maxWindowLayers = typeof c['max_window_layers'] === 'number' ? c['max_window_layers'] : 28;
  return full.map((_, i) => (W !== null && i >= maxWindowLayers ? W : null));
}

function refuseUnimplemented(c: Json, bad: Bad): void {
  const act = c['hidden_act'] ?? c['hidden_activation'] ?? 'silu';
  if (act !== 'silu') {
    bad('hidden_act', `${JSON.stringify(act)} is not implemented (mft implements silu / SwiGLU)`);
  }
  if (c['mlp_bias'] === true) bad('mlp_bias', 'MLP biases are not implemented');
  const prf = c['partial_rotary_factor'];
  if (prf !== undefined && prf !== null && prf !== 1) {
    bad('partial_rotary_factor', `partial rotary embeddings (${prf}) are not implemented`);
  }
  const drop = c['attention_dropout'];
  if (typeof drop === 'number' && drop !== 0) {
    bad('attention_dropout', `attention dropout ${drop} is not implemented`, 'set attention_dropout to 0.0');
  }
  if (c['quantization_config'] != null) {
    bad(
      'quantization_config',
      'pre-quantized checkpoints (GPTQ, AWQ, bitsandbytes...) are not supported',
      'use the unquantized checkpoint; mft quantizes it itself with quantization: nf4 or int8',
    );
  }
  // MistralAttention and Qwen2Attention fix their biases whatever `attention_bias` says; HF ignores
  // the key there, and so do we.
  for (const key of ['attn_logit_softcapping', 'final_logit_softcapping']) {
    if (c[key] != null) bad(key, 'logit soft-capping is not implemented');
  }
}

function readTokenId(v: unknown, key: string, bad: Bad): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      bad(key, `expected a token id or a list of ids, got ${JSON.stringify(v)}`);
      return [];
    }
  }
  return list as number[];
}
