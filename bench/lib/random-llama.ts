/**
 * Llama-shaped models with random weights, built in memory through the real loader (`buildModel`),
 * so storage conversion and quantization run exactly as for a checkpoint. Timing does not depend on
 * the values; they are scaled like a trained model's (uniform, 1 / sqrt(in)) so NF4 blocks and
 * softmaxes see realistic ranges.
 */

import { type CreateLoraOptions, createLora, type LoraState } from '../../src/lora/index.js';
import type { Batch } from '../../src/model/batch.js';
import { buildModel, type LoadedModel, type ModelSpec, parseModelSpec } from '../../src/model/index.js';
import { mixSeed, Rng } from '../../src/util/index.js';
import type { TensorData } from '../../src/weights/index.js';

/** The config.json fields of a benchmark model (absent ones take config.json's defaults; untied). */
export interface LlamaShape {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  max_position_embeddings?: number;
  tie_word_embeddings?: boolean;
}

/** How the frozen base is stored: the task keys `precision` and `quantization`. */
export type Storage = 'fp32' | 'bf16' | 'fp16' | 'int8' | 'nf4';

export const STORAGES: readonly Storage[] = ['fp32', 'bf16', 'fp16', 'int8', 'nf4'];

/**
 * The loader options of a storage. int8 / nf4 quantize the projections (double quantization for
 * nf4, as QLoRA); everything else (embedding, lm_head, norms) is then kept in bf16, as in QLoRA.
 */
export function loadOptions(storage: Storage): {
  precision: 'fp32' | 'bf16' | 'fp16';
  quantization: 'none' | 'int8' | 'nf4';
  doubleQuant: boolean;
} {
  if (storage === 'int8' || storage === 'nf4') {
    return { precision: 'bf16', quantization: storage, doubleQuant: storage === 'nf4' };
  }
  return { precision: storage, quantization: 'none', doubleQuant: false };
}

/** HF weight names and shapes of a Llama model (lm_head only when the embeddings are untied). */
function weightShapes(spec: ModelSpec): Map<string, number[]> {
  const H = spec.hidden_size;
  const I = spec.intermediate_size;
  const q = spec.num_attention_heads * spec.head_dim;
  const kv = spec.num_key_value_heads * spec.head_dim;
  const shapes = new Map<string, number[]>();
  shapes.set('model.embed_tokens.weight', [spec.vocab_size, H]);
  for (let i = 0; i < spec.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [H]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [H]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [q, H]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kv, H]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kv, H]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [H, q]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [I, H]);
    shapes.set(`${p}.mlp.up_proj.weight`, [I, H]);
    shapes.set(`${p}.mlp.down_proj.weight`, [H, I]);
  }
  shapes.set('model.norm.weight', [H]);
  if (!spec.tie_word_embeddings) shapes.set('lm_head.weight', [spec.vocab_size, H]);
  return shapes;
}

/** The config of `randomLlama`'s model. */
export function randomLlamaSpec(shape: LlamaShape): ModelSpec {
  // no bos / eos ids: generation then always runs to maxNewTokens
  return parseModelSpec({
    architectures: ['LlamaForCausalLM'],
    torch_dtype: 'float32',
    tie_word_embeddings: false,
    ...shape,
  });
}

/**
 * A Llama model with random weights in the given storage.
 * @example const model = randomLlama(SHAPE, 'nf4', 1);
 */
export function randomLlama(shape: LlamaShape, storage: Storage, seed: number): LoadedModel {
  const spec = randomLlamaSpec(shape);
  const shapes = weightShapes(spec);
  const names = [...shapes.keys()];
  const read = (name: string): TensorData => {
    const dims = shapes.get(name)!;
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (dims.length === 1) {
      data.fill(1);
    } else {
      const rng = new Rng(mixSeed(seed, names.indexOf(name)));
      const s = 1 / Math.sqrt(dims[1]!);
      for (let k = 0; k < n; k++) data[k] = (2 * rng.next() - 1) * s;
    }
    return { dtype: 'F32', shape: dims, data };
  };
  return buildModel(`random-llama-${storage}`, spec, { names: () => names, read }, loadOptions(storage));
}

/** Bytes held by the frozen weights (each distinct tensor once). */
export function heldBytes(model: LoadedModel): number {
  const seen = new Set<unknown>();
  let bytes = 0;
  const add = (t: { byteLength: number } | undefined) => {
    if (!t || seen.has(t)) return;
    seen.add(t);
    bytes += t.byteLength;
  };
  add(model.embed_tokens);
  add(model.norm);
  add(model.lm_head);
  for (const layer of model.layers) for (const t of Object.values(layer)) add(t);
  return bytes;
}

/**
 * A packed batch of random tokens: each row holds two documents of T / 2 tokens (segments and
 * positions restart), labels are the next token inside a document and -100 at its last token.
 */
export function randomBatch(vocab: number, batchSize: number, seqLen: number, seed: number): Batch {
  const rng = new Rng(seed);
  const n = batchSize * seqLen;
  const half = Math.max(1, Math.floor(seqLen / 2));
  const inputIds = new Int32Array(n).map(() => rng.int(vocab));
  const segmentIds = new Int32Array(n).map((_, k) => (k % seqLen < half ? 0 : 1));
  const positionIds = new Int32Array(n).map((_, k) => (k % seqLen) % half);
  const labels = new Int32Array(n).map((_, k) =>
    (k % seqLen) + 1 < seqLen && segmentIds[k + 1] === segmentIds[k] ? inputIds[k + 1]! : -100,
  );
  return { batchSize, seqLen, inputIds, labels, segmentIds, positionIds };
}

/** The benchmark's adapter: alpha 16 on every linear layer, seeded; dropout as the section needs. */
export function benchLora(model: LoadedModel, r: number, dropout: number): LoraState {
  return createLora(model, benchLoraOptions(r, dropout));
}

/** The LoRA settings of `benchLora` (what bench workers build theirs from). */
export function benchLoraOptions(r: number, dropout: number): CreateLoraOptions {
  return { r, alpha: 16, dropout, targets: 'all-linear', useRslora: false, seed: 1 };
}
