/**
 * `mft export gguf`: a Hugging Face Llama / Mistral / Qwen2 checkpoint (optionally with a LoRA adapter
 * merged in) as one GGUF file for llama.cpp, or a LoRA adapter alone as a GGUF adapter.
 *
 * What llama.cpp expects, as its convert_hf_to_gguf.py / convert_lora_to_gguf.py write it:
 * - tensor names `token_embd`, `blk.N.attn_q` ... `output_norm`, `output`; dimensions innermost
 *   first (an HF [out, in] weight is ne = [in, out], same bytes);
 * - Llama and Mistral as the `llama` architecture: the q and k projections' rows (and biases)
 *   permuted per head from HF's rotate_half RoPE layout (the two halves of a head) back to the
 *   interleaved pairs of the original Llama, which llama.cpp's llama architecture rotates: row
 *   (h, half, j) moves to (h, j, half);
 * - Qwen2 as the `qwen2` architecture, which llama.cpp rotates in halves (NEOX) as HF does: no
 *   permutation; its q/k/v biases are `attn_q.bias` ...;
 * - a sliding window has no key in either architecture (llama.cpp attends over the whole context);
 * - 1-D tensors (norms) stay f32; q8_0 needs rows of a multiple of 32 values, others fall back to f16;
 * - an adapter: `lora_a` ne = [in, r] and `lora_b` ne = [r, out] (the permutation applies to B's rows),
 *   `adapter.lora.alpha` such that alpha / r is the adapter's scale.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { mergeAdapter, toF32 } from '../lora/merge.js';
import type { PeftAdapter } from '../lora/peft-adapter.js';
import { type ModelSpec, readModelSpec } from '../model/index.js';
import { fail } from '../util/index.js';
import { f32ToF16, openCheckpoint } from '../weights/index.js';
import { ggufTokenizerMetadata } from './gguf-tokenizer.js';
import { GGML_TYPE, type GgmlType, type GgufTensorInfo, type GgufValue, writeGguf } from './gguf-writer.js';

export type GgufType = 'f32' | 'f16' | 'q8_0';

const GGML_OF: Record<GgufType, GgmlType> = { f32: GGML_TYPE.F32, f16: GGML_TYPE.F16, q8_0: GGML_TYPE.Q8_0 };
/** general.file_type (llama.cpp `llama_ftype`): ALL_F32, MOSTLY_F16, MOSTLY_Q8_0. */
const FILE_TYPE: Record<GgufType, number> = { f32: 0, f16: 1, q8_0: 7 };

const LAYER_NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.bias': 'attn_output.bias',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};
const TOP_NAMES: Record<string, string> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
};

/** The GGUF name of an HF tensor name, or null for one llama.cpp does not read (rotary buffers). */
export function ggufTensorName(hf: string): string | null {
  const top = TOP_NAMES[hf];
  if (top) return top;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (m && LAYER_NAMES[m[2] as string]) return `blk.${m[1]}.${LAYER_NAMES[m[2] as string]}`;
  if (hf.endsWith('.rotary_emb.inv_freq')) return null;
  fail(
    hf,
    'a tensor the GGUF llama layout has no name for',
    'export a plain Llama / Mistral / Qwen2 checkpoint',
  );
}

/** llama.cpp's architecture name for a model: the prefix of its metadata keys. */
export function ggufArchitecture(spec: ModelSpec): 'llama' | 'qwen2' {
  return spec.architecture === 'Qwen2ForCausalLM' ? 'qwen2' : 'llama';
}

/**
 * Permute the rows of a q or k projection ([heads * headDim, cols], row-major) from HF's
 * rotate_half layout to llama.cpp's interleaved one: row h*d + half*(d/2) + j goes to h*d + 2j + half.
 */
export function permuteRopeRows(w: Float32Array, heads: number, cols: number): Float32Array {
  const rows = w.length / cols;
  const d = rows / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let half = 0; half < 2; half++) {
      for (let j = 0; j < d / 2; j++) {
        const src = (h * d + half * (d / 2) + j) * cols;
        out.set(w.subarray(src, src + cols), (h * d + 2 * j + half) * cols);
      }
    }
  }
  return out;
}

/** ggml's Q8_0: per block of 32 values, d = max|x| / 127 (stored f16) and q = round(x / d) as int8. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  const one = new Float32Array(1);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i] as number));
    const d = amax / 127;
    const id = d === 0 ? 0 : 1 / d;
    one[0] = d;
    view.setUint16(b * 34, f32ToF16(one, 'q8_0 scale')[0] as number, true);
    for (let i = 0; i < 32; i++) {
      const v = (x[b * 32 + i] as number) * id;
      view.setInt8(b * 34 + 2 + i, Math.sign(v) * Math.round(Math.abs(v))); // roundf: half away from zero
    }
  }
  return out;
}

function encode(x: Float32Array, type: GgmlType, name: string): Uint8Array {
  if (type === GGML_TYPE.F32) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (type === GGML_TYPE.F16) {
    const h = f32ToF16(x, name);
    return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  }
  return quantizeQ8_0(x);
}

function checkArchitecture(spec: ModelSpec, dir: string): void {
  // llama.cpp's qwen2 reads q and o as [hidden, hidden] (no head_dim key).
  if (ggufArchitecture(spec) === 'qwen2' && spec.num_attention_heads * spec.head_dim !== spec.hidden_size)
    fail(
      join(dir, 'config.json'),
      `head_dim ${spec.head_dim} x ${spec.num_attention_heads} heads is not hidden_size ${spec.hidden_size}, which llama.cpp's qwen2 architecture requires`,
      'export a Qwen2 model whose head_dim is hidden_size / num_attention_heads',
    );
}

/** The smallest sliding window of any layer shorter than the context, or null (none that matters). */
export function effectiveSlidingWindow(spec: ModelSpec): number | null {
  const windows = spec.sliding_window.filter(
    (w): w is number => w !== null && w < spec.max_position_embeddings,
  );
  return windows.length > 0 ? Math.min(...windows) : null;
}

function modelMetadata(spec: ModelSpec, name: string, type: GgufType | null): Map<string, GgufValue> {
  const m = new Map<string, GgufValue>();
  const arch = ggufArchitecture(spec);
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufValue => ({ type: 'f32', value });
  m.set('general.architecture', { type: 'string', value: arch });
  m.set('general.name', { type: 'string', value: name });
  if (type) m.set('general.file_type', u32(FILE_TYPE[type]));
  const keys: [string, GgufValue][] = [
    ['vocab_size', u32(spec.vocab_size)],
    ['context_length', u32(spec.max_position_embeddings)],
    ['embedding_length', u32(spec.hidden_size)],
    ['block_count', u32(spec.num_hidden_layers)],
    ['feed_forward_length', u32(spec.intermediate_size)],
    ['attention.head_count', u32(spec.num_attention_heads)],
    ['attention.head_count_kv', u32(spec.num_key_value_heads)],
    ['attention.key_length', u32(spec.head_dim)],
    ['attention.value_length', u32(spec.head_dim)],
    ['rope.dimension_count', u32(spec.head_dim)],
    ['rope.freq_base', f32(spec.rope_theta)],
    ['attention.layer_norm_rms_epsilon', f32(spec.rms_norm_eps)],
  ];
  const rs = spec.rope_scaling;
  if (rs?.rope_type === 'linear') {
    keys.push(
      ['rope.scaling.type', { type: 'string', value: 'linear' }],
      ['rope.scaling.factor', f32(rs.factor)],
    );
  }
  for (const [key, value] of keys) m.set(`${arch}.${key}`, value);
  return m;
}

/** Llama 3's frequency factors as llama.cpp reads them (`rope_freqs.weight`), from convert_hf_to_gguf. */
function llama3RopeFactors(spec: ModelSpec): Float32Array | null {
  const rs = spec.rope_scaling;
  if (rs?.rope_type !== 'llama3') return null;
  const dim = spec.head_dim;
  const out = new Float32Array(dim / 2);
  const lowWavelen = rs.original_max_position_embeddings / rs.low_freq_factor;
  const highWavelen = rs.original_max_position_embeddings / rs.high_freq_factor;
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / spec.rope_theta ** ((2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = rs.factor;
    else {
      const smooth =
        (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) /
        (rs.high_freq_factor - rs.low_freq_factor);
      out[i] = 1 / ((1 - smooth) / rs.factor + smooth);
    }
  }
  return out;
}

/**
 * The number of heads whose rows a q / k weight, bias or LoRA B holds and llama.cpp wants permuted,
 * or 0 (other tensors; every tensor of an architecture that rotates in halves as HF does).
 */
function ropeHeads(hfName: string, spec: ModelSpec): number {
  if (ggufArchitecture(spec) !== 'llama') return 0;
  if (/\.self_attn\.q_proj\./.test(hfName)) return spec.num_attention_heads;
  if (/\.self_attn\.k_proj\./.test(hfName)) return spec.num_key_value_heads;
  return 0;
}

export interface ExportGgufOptions {
  /** Base model directory (config.json, safetensors, tokenizer files). */
  model: string;
  /** A LoRA adapter: merged into the weights, or written alone with `loraOnly`. */
  adapter?: { adapter: PeftAdapter; dir: string };
  out: string;
  type: GgufType;
  loraOnly?: boolean;
  log?: (line: string) => void;
}

export interface ExportGgufResult {
  out: string;
  bytes: number;
  tensors: number;
  /** Tensors written as f16 because q8_0 needs rows of a multiple of 32 values. */
  fallbacks: string[];
}

/**
 * Write the model (with the adapter merged in) or the adapter alone as a GGUF file.
 * @example await exportGguf({ model: 'checkpoints/base/tinystories-260k', out: 'stories.gguf', type: 'f16' });
 */
export async function exportGguf(opts: ExportGgufOptions): Promise<ExportGgufResult> {
  const out = resolve(opts.out);
  if (opts.loraOnly) {
    if (!opts.adapter) fail('--lora-only', 'needs --adapter', 'pass --adapter DIR');
    return exportLora(opts.model, opts.adapter, out, opts.type);
  }
  if (!opts.adapter) return exportModel(opts.model, out, opts.type, opts.log);
  // Merge into a temporary fp32 model folder beside the output, export it, remove it.
  const tmp = mkdtempSync(join(dirname(out), '.mft-gguf-merge-'));
  try {
    const merged = join(tmp, 'merged');
    mergeAdapter({
      model: opts.model,
      adapter: opts.adapter.adapter,
      adapterDir: opts.adapter.dir,
      out: merged,
      dtype: 'fp32',
      log: opts.log,
    });
    return await exportModel(merged, out, opts.type, opts.log);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function exportModel(
  dir: string,
  out: string,
  type: GgufType,
  log?: (line: string) => void,
): Promise<ExportGgufResult> {
  const spec = readModelSpec(dir);
  checkArchitecture(spec, dir);
  const window = effectiveSlidingWindow(spec);
  if (window !== null)
    log?.(
      `sliding_window ${window} is not written: llama.cpp attends over the whole context, so outputs past ${window} tokens differ from transformers'`,
    );
  const meta = modelMetadata(spec, dir.split('/').filter(Boolean).pop() ?? 'model', type);
  for (const [k, v] of await ggufTokenizerMetadata(dir, spec.vocab_size)) meta.set(k, v);
  const ckpt = openCheckpoint(dir);
  try {
    const infos: (GgufTensorInfo & { hf: string | null })[] = [];
    const fallbacks: string[] = [];
    const ropeFactors = llama3RopeFactors(spec);
    if (ropeFactors)
      infos.push({ name: 'rope_freqs.weight', ne: [ropeFactors.length], type: GGML_TYPE.F32, hf: null });
    for (const hf of ckpt.names()) {
      const name = ggufTensorName(hf);
      if (name === null) continue;
      const shape = ckpt.info(hf).shape;
      const ne = [...shape].reverse();
      let t = shape.length === 1 ? GGML_TYPE.F32 : GGML_OF[type];
      if (t === GGML_TYPE.Q8_0 && (ne[0] as number) % 32 !== 0) {
        t = GGML_TYPE.F16;
        fallbacks.push(name);
      }
      infos.push({ name, ne, type: t, hf });
    }
    if (fallbacks.length > 0)
      log?.(`q8_0 needs rows of a multiple of 32 values: ${fallbacks.join(', ')} written as f16`);
    const { bytes } = writeGguf(out, meta, infos, (info, i) => {
      const hf = infos[i]?.hf ?? null;
      if (hf === null) return encode(ropeFactors as Float32Array, GGML_TYPE.F32, info.name);
      let w = toF32(ckpt.read(hf));
      const heads = ropeHeads(hf, spec);
      if (heads > 0) w = permuteRopeRows(w, heads, info.ne.length === 1 ? 1 : (info.ne[0] as number));
      return encode(w, info.type, hf);
    });
    return { out, bytes, tensors: infos.length, fallbacks };
  } finally {
    ckpt.close();
  }
}

const PEFT_KEY_RE = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

function exportLora(
  model: string,
  a: { adapter: PeftAdapter; dir: string },
  out: string,
  type: GgufType,
): ExportGgufResult {
  if (type === 'q8_0')
    fail('--type', 'a GGUF LoRA adapter is written as f32 or f16', 'pass --type f32 or --type f16');
  const spec = readModelSpec(model);
  checkArchitecture(spec, model);
  const { r, lora_alpha: alpha, use_rslora: rs } = a.adapter.config;
  const meta = new Map<string, GgufValue>();
  meta.set('general.architecture', { type: 'string', value: ggufArchitecture(spec) });
  meta.set('general.type', { type: 'string', value: 'adapter' });
  meta.set('adapter.type', { type: 'string', value: 'lora' });
  // llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is alpha * sqrt(r) / r.
  meta.set('adapter.lora.alpha', { type: 'f32', value: rs ? alpha * Math.sqrt(r) : alpha });
  const infos: (GgufTensorInfo & { key: string; heads: number })[] = [];
  for (const [key, t] of a.adapter.tensors) {
    const m = PEFT_KEY_RE.exec(key);
    if (!m)
      fail(
        join(a.dir, 'adapter_model.safetensors'),
        `${key}: not a PEFT LoRA key`,
        'save the adapter with PEFT or mft',
      );
    const base = ggufTensorName(`${m[1]}.weight`);
    const name = `${base}.lora_${(m[2] as string).toLowerCase()}`;
    infos.push({
      name,
      ne: [...t.shape].reverse(),
      type: GGML_OF[type],
      key,
      heads: m[2] === 'B' ? ropeHeads(key, spec) : 0,
    });
  }
  infos.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  const { bytes } = writeGguf(out, meta, infos, (info, i) => {
    const t = infos[i] as (typeof infos)[number];
    let w = (a.adapter.tensors.get(t.key) as { data: Float32Array }).data;
    if (t.heads > 0) w = permuteRopeRows(w, t.heads, info.ne[0] as number);
    return encode(w, info.type, t.key);
  });
  return { out, bytes, tensors: infos.length, fallbacks: [] };
}
