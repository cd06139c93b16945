/**
 * Small random models and batches for the LoRA tests: weights drawn from a seeded Rng, built
 * through the model stage's own loader (`buildModel`) so shapes and names are the real ones.
 */
import type { Batch } from '../../src/model/batch.js';
import type { LoadedModel } from '../../src/model/index.js';
import { buildModel } from '../../src/model/load.js';
import { parseModelSpec } from '../../src/model/spec.js';
import { Rng } from '../../src/util/index.js';
import type { TensorData } from '../../src/weights/safetensors.js';

/** A config.json for a tiny Llama with GQA (overridable). */
export function tinyConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    vocab_size: 48,
    hidden_size: 32,
    intermediate_size: 40,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
    ...overrides,
  };
}

function uniform(rng: Rng, n: number, scale: number, offset = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + (2 * rng.next() - 1) * scale;
  return out;
}

/** A model with random fp32 weights (linears ~U(-0.3, 0.3), norms ~1 +- 0.2). */
export function randomModel(config: Record<string, unknown> = tinyConfig(), seed = 1): LoadedModel {
  const spec = parseModelSpec(config, 'tiny config');
  const rng = new Rng(seed);
  const H = spec.hidden_size;
  const qOut = spec.num_attention_heads * spec.head_dim;
  const kvOut = spec.num_key_value_heads * spec.head_dim;
  const tensors = new Map<string, TensorData>();
  const put = (name: string, shape: number[], scale: number, offset = 0) =>
    tensors.set(name, {
      dtype: 'F32',
      shape,
      data: uniform(rng, shape[0]! * (shape[1] ?? 1), scale, offset),
    });
  put('model.embed_tokens.weight', [spec.vocab_size, H], 1);
  put('model.norm.weight', [H], 0.2, 1);
  if (!spec.tie_word_embeddings) put('lm_head.weight', [spec.vocab_size, H], 0.3);
  for (let i = 0; i < spec.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [H], 0.2, 1);
    put(`${p}.post_attention_layernorm.weight`, [H], 0.2, 1);
    put(`${p}.self_attn.q_proj.weight`, [qOut, H], 0.3);
    put(`${p}.self_attn.k_proj.weight`, [kvOut, H], 0.3);
    put(`${p}.self_attn.v_proj.weight`, [kvOut, H], 0.3);
    put(`${p}.self_attn.o_proj.weight`, [H, qOut], 0.3);
    put(`${p}.mlp.gate_proj.weight`, [spec.intermediate_size, H], 0.3);
    put(`${p}.mlp.up_proj.weight`, [spec.intermediate_size, H], 0.3);
    put(`${p}.mlp.down_proj.weight`, [H, spec.intermediate_size], 0.3);
    if (spec.attention_bias) {
      put(`${p}.self_attn.q_proj.bias`, [qOut], 0.1);
      put(`${p}.self_attn.k_proj.bias`, [kvOut], 0.1);
      put(`${p}.self_attn.v_proj.bias`, [kvOut], 0.1);
    }
  }
  const source = { names: () => [...tensors.keys()], read: (name: string) => tensors.get(name)! };
  return buildModel('tiny-random', spec, source);
}

/**
 * A packed batch: each row holds documents of random lengths (segments), positions restart per
 * document, labels are the next token within the document and -100 on each document's last token.
 */
export function randomBatch(vocab: number, batchSize: number, seqLen: number, seed = 2): Batch {
  const rng = new Rng(seed);
  const n = batchSize * seqLen;
  const inputIds = new Int32Array(n);
  const labels = new Int32Array(n);
  const segmentIds = new Int32Array(n);
  const positionIds = new Int32Array(n);
  for (let b = 0; b < batchSize; b++) {
    let seg = 0;
    let pos = 0;
    let docLen = 3 + rng.int(seqLen);
    for (let t = 0; t < seqLen; t++) {
      if (pos === docLen) {
        seg++;
        pos = 0;
        docLen = 3 + rng.int(seqLen);
      }
      const k = b * seqLen + t;
      inputIds[k] = rng.int(vocab);
      segmentIds[k] = seg;
      positionIds[k] = pos++;
    }
    for (let t = 0; t < seqLen; t++) {
      const k = b * seqLen + t;
      const sameDoc = t + 1 < seqLen && segmentIds[k + 1] === segmentIds[k];
      labels[k] = sameDoc ? inputIds[k + 1]! : -100;
    }
  }
  return { batchSize, seqLen, inputIds, labels, segmentIds, positionIds };
}
