/**
 * Load a Hugging Face Llama / Mistral / Qwen2 directory into frozen weights that stay outside tfjs,
 * in their storage format: the checkpoint dtype (`precision: auto`), a chosen 16-bit/fp32 dtype, or
 * NF4 / int8 for the decoder's linear weights (QLoRA; embeddings, norms and lm_head keep
 * `precision`). The checkpoint is read tensor by tensor and quantized as it is read, so the whole
 * model never exists in fp32. A layer becomes fp32 tfjs tensors only while it computes
 * (`layerTensors`).
 */
import { quantize } from '../quant/index.js';
import { MftError } from '../util/index.js';
import { openCheckpoint } from '../weights/checkpoint-files.js';
import { bf16ToF32, f16ToF32 } from '../weights/dtype.js';
import type { FrozenTensor } from '../weights/frozen-tensor.js';
import type { TensorData } from '../weights/safetensors.js';
import { StoredTensor } from '../weights/stored-tensor.js';
import { LINEAR_NAMES, type LinearName, linearShapes } from './linear-names.js';
import type { LayerWeights, LoadedModel } from './loaded-model.js';
import { type ModelSpec, readGenerationEosIds, readModelSpec, specHash } from './spec.js';

export type Quantization = 'none' | 'int8' | 'nf4';
export const PRECISIONS = ['auto', 'fp32', 'bf16', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];

export interface LoadModelOptions {
  /** Storage of the decoder's linear weights (default 'none'). */
  quantization?: Quantization;
  /** Quantize the block absmaxes too (QLoRA's double quantization; default: true for nf4, false for int8). */
  doubleQuant?: boolean;
  /** Storage of everything not quantized; 'auto' (default) keeps the checkpoint dtype. */
  precision?: Precision;
}

/** Where the weights come from: a checkpoint, or tensors built in memory (tests, converters). */
export interface TensorSource {
  names(): string[];
  /** `shared`: back the data with a SharedArrayBuffer (worker threads read it without copies). */
  read(name: string, opts?: { shared?: boolean }): TensorData;
}

/**
 * Read `<dir>/config.json` and the safetensors weights (single file or shards).
 * @param dir a Hugging Face model directory
 * @param opts quantization ('none'), doubleQuant (nf4: true, int8: false), precision ('auto')
 * @example
 *   const model = await loadModel('checkpoints/base/tinystories-260k', { quantization: 'nf4' });
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const spec = readModelSpec(dir);
  const files = openCheckpoint(dir);
  try {
    return buildModel(dir, spec, files, opts);
  } finally {
    files.close();
  }
}

/** The HF weight names of layer `i`, by role. */
export function layerWeightNames(i: number): Record<keyof LayerWeights, string> {
  const p = `model.layers.${i}`;
  return {
    input_layernorm: `${p}.input_layernorm.weight`,
    post_attention_layernorm: `${p}.post_attention_layernorm.weight`,
    q_proj: `${p}.self_attn.q_proj.weight`,
    k_proj: `${p}.self_attn.k_proj.weight`,
    v_proj: `${p}.self_attn.v_proj.weight`,
    o_proj: `${p}.self_attn.o_proj.weight`,
    gate_proj: `${p}.mlp.gate_proj.weight`,
    up_proj: `${p}.mlp.up_proj.weight`,
    down_proj: `${p}.mlp.down_proj.weight`,
    q_bias: `${p}.self_attn.q_proj.bias`,
    k_bias: `${p}.self_attn.k_proj.bias`,
    v_bias: `${p}.self_attn.v_proj.bias`,
    o_bias: `${p}.self_attn.o_proj.bias`,
  };
}

/**
 * Build a `LoadedModel` from any tensor source, validating every name, shape and dtype against the
 * spec. Tensors the spec does not use are an error (they would change the maths), except
 * `rotary_emb.inv_freq` buffers and an `lm_head.weight` of a tied model, which HF ignores too.
 */
export function buildModel(
  dir: string,
  spec: ModelSpec,
  source: TensorSource,
  opts: LoadModelOptions = {},
): LoadedModel {
  const quantization = opts.quantization ?? 'none';
  const precision = opts.precision ?? 'auto';
  const where = dir;
  const available = new Set(source.names());
  const used = new Set<string>();
  const { hidden_size: hidden, vocab_size: vocab } = spec;
  const qOut = spec.num_attention_heads * spec.head_dim;
  const kvOut = spec.num_key_value_heads * spec.head_dim;

  const read = (name: string, shape: number[], quantized = false): FrozenTensor => {
    if (!available.has(name)) {
      throw new MftError({
        where,
        message: `tensor ${name} is missing from the checkpoint`,
        fix: 'check that config.json matches the weights (architecture, attention_bias, tie_word_embeddings)',
      });
    }
    used.add(name);
    const data = source.read(name, { shared: true });
    if (data.shape.length !== shape.length || data.shape.some((d, k) => d !== shape[k])) {
      throw new MftError({
        where,
        message: `tensor ${name} has shape [${data.shape}], config.json implies [${shape}]`,
        fix: 'check that config.json belongs to these weights',
      });
    }
    if (data.dtype !== 'F32' && data.dtype !== 'BF16' && data.dtype !== 'F16') {
      throw new MftError({
        where,
        message: `tensor ${name} has dtype ${data.dtype}; weights must be F32, BF16 or F16`,
      });
    }
    if (quantized && quantization !== 'none') {
      return quantize(name, shape, toFloat32(data), quantization, {
        doubleQuant: opts.doubleQuant ?? quantization === 'nf4',
      });
    }
    return StoredTensor.fromData(name, data, storageFor(data.dtype, precision));
  };

  const shapes = linearShapes(spec);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < spec.num_hidden_layers; i++) {
    const n = layerWeightNames(i);
    const linears = Object.fromEntries(
      LINEAR_NAMES.map((name) => [name, read(n[name], shapes[name], true)]),
    ) as Record<LinearName, FrozenTensor>;
    layers.push({
      input_layernorm: read(n.input_layernorm, [hidden]),
      post_attention_layernorm: read(n.post_attention_layernorm, [hidden]),
      ...linears,
      ...(spec.attention_bias
        ? { q_bias: read(n.q_bias, [qOut]), k_bias: read(n.k_bias, [kvOut]), v_bias: read(n.v_bias, [kvOut]) }
        : {}),
      ...(spec.o_proj_bias ? { o_bias: read(n.o_bias, [hidden]) } : {}),
    });
  }
  const embed_tokens = read('model.embed_tokens.weight', [vocab, hidden]);
  const norm = read('model.norm.weight', [hidden]);
  const lm_head = spec.tie_word_embeddings ? embed_tokens : read('lm_head.weight', [vocab, hidden]);

  const unexpected = [...available].filter(
    (name) =>
      !used.has(name) &&
      !name.endsWith('.rotary_emb.inv_freq') &&
      !(spec.tie_word_embeddings && name === 'lm_head.weight'),
  );
  if (unexpected.length > 0) {
    const shown =
      unexpected.slice(0, 5).join(', ') + (unexpected.length > 5 ? `, ... (${unexpected.length})` : '');
    throw new MftError({
      where,
      message: `the checkpoint has tensors this ${spec.architecture} config does not use: ${shown}`,
      fix: 'check config.json (attention_bias, num_hidden_layers, tie_word_embeddings) against the weights',
    });
  }
  const stopTokenIds = [...new Set([...spec.eos_token_id, ...readGenerationEosIds(dir)])];
  return { dir, spec, embed_tokens, norm, lm_head, layers, configHash: specHash(spec), stopTokenIds };
}

function storageFor(dtype: 'F32' | 'BF16' | 'F16', precision: Precision): 'f32' | 'bf16' | 'f16' {
  if (precision === 'fp32') return 'f32';
  if (precision === 'bf16') return 'bf16';
  if (precision === 'fp16') return 'f16';
  return dtype === 'F32' ? 'f32' : dtype === 'BF16' ? 'bf16' : 'f16';
}

function toFloat32(data: TensorData): Float32Array {
  if (data.dtype === 'F32') return data.data as Float32Array;
  if (data.dtype === 'BF16') return bf16ToF32(data.data as Uint16Array);
  return f16ToF32(data.data as Uint16Array);
}
