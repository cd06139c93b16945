/**
 * config.json → ModelSpec: defaults filled once, per-architecture rules (Mistral / Qwen2 sliding
 * windows, Qwen2 biases, Llama attention_bias), RoPE scaling, and every maths-changing field that is
 * not implemented refused with an MftError. Also the weight checks of loadModel.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadModel, parseModelSpec, specHash } from '../../src/model/index.js';
import { writeSafetensors } from '../../src/weights/index.js';
import { errorOf } from '../helpers/error-of.js';
import { removeTempDirs } from '../helpers/tmp-dir.js';
import { writeTinyModel } from './tiny-model.js';

const llama = {
  architectures: ['LlamaForCausalLM'],
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 4,
  num_attention_heads: 32,
};

describe('parseModelSpec', () => {
  test('Llama defaults: kv heads = heads, head_dim = hidden / heads, no window, no biases', () => {
    const s = parseModelSpec(llama);
    expect(s).toMatchObject({
      architecture: 'LlamaForCausalLM',
      num_key_value_heads: 32,
      head_dim: 128,
      rope_theta: 10000,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      tie_word_embeddings: false,
      attention_bias: false,
      o_proj_bias: false,
      max_position_embeddings: 2048,
      bos_token_id: null,
      eos_token_id: [],
      torch_dtype: 'float32',
    });
    expect(s.sliding_window).toEqual([null, null, null, null]);
    expect(Object.isFrozen(s)).toBe(true);
  });

  test('explicit head_dim, GQA, eos list, Llama attention_bias on q/k/v and o', () => {
    const s = parseModelSpec({
      ...llama,
      num_key_value_heads: 8,
      head_dim: 64,
      attention_bias: true,
      bos_token_id: 128000,
      eos_token_id: [128001, 128009],
      torch_dtype: 'bfloat16',
    });
    expect(s.head_dim).toBe(64);
    expect(s.num_key_value_heads).toBe(8);
    expect(s.attention_bias && s.o_proj_bias).toBe(true);
    expect(s.eos_token_id).toEqual([128001, 128009]);
    expect(s.bos_token_id).toBe(128000);
    expect(s.torch_dtype).toBe('bfloat16');
  });

  test('Mistral: sliding_window applies to every layer; null = none; absent = 4096 (MistralConfig)', () => {
    const m = { ...llama, architectures: ['MistralForCausalLM'] };
    expect(parseModelSpec({ ...m, sliding_window: 4096 }).sliding_window).toEqual([4096, 4096, 4096, 4096]);
    expect(parseModelSpec({ ...m, sliding_window: null }).sliding_window).toEqual([null, null, null, null]);
    expect(parseModelSpec(m).sliding_window).toEqual([4096, 4096, 4096, 4096]);
    expect(parseModelSpec({ ...m, attention_bias: true }).attention_bias).toBe(false);
  });

  test('Qwen2: q/k/v biases (not o); the window only with use_sliding_window, from max_window_layers on', () => {
    const q = { ...llama, architectures: ['Qwen2ForCausalLM'], sliding_window: 8, max_window_layers: 2 };
    const off = parseModelSpec({ ...q, use_sliding_window: false });
    expect(off.attention_bias).toBe(true);
    expect(off.o_proj_bias).toBe(false);
    expect(off.sliding_window).toEqual([null, null, null, null]);
    expect(parseModelSpec({ ...q, use_sliding_window: true }).sliding_window).toEqual([null, null, 8, 8]);
    const types = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'];
    expect(parseModelSpec({ ...q, use_sliding_window: true, layer_types: types }).sliding_window).toEqual([
      8,
      null,
      8,
      null,
    ]);
  });

  test('rope_scaling: linear and llama3 read; "default" = none; the older `type` key; v5 rope_parameters', () => {
    expect(parseModelSpec({ ...llama, rope_scaling: { type: 'linear', factor: 2 } }).rope_scaling).toEqual({
      rope_type: 'linear',
      factor: 2,
    });
    const l3 = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    expect(parseModelSpec({ ...llama, rope_scaling: l3 }).rope_scaling).toEqual(l3);
    expect(parseModelSpec({ ...llama, rope_scaling: { rope_type: 'default' } }).rope_scaling).toBeNull();
    const v5 = parseModelSpec({
      ...llama,
      rope_parameters: { rope_type: 'linear', factor: 4, rope_theta: 500000 },
    });
    expect(v5.rope_theta).toBe(500000);
    expect(v5.rope_scaling).toEqual({ rope_type: 'linear', factor: 4 });
  });

  test('an unsupported architecture names the supported ones', () => {
    expect(errorOf(() => parseModelSpec({ ...llama, architectures: ['GPT2LMHeadModel'] }))).toMatch(
      /architectures: "GPT2LMHeadModel" is not supported; mft supports LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM/,
    );
  });

  test('fields that change the maths and are not implemented are refused, all reported together', () => {
    const msg = errorOf(() =>
      parseModelSpec(
        {
          ...llama,
          hidden_act: 'gelu',
          mlp_bias: true,
          partial_rotary_factor: 0.5,
          rope_scaling: { rope_type: 'yarn', factor: 4 },
          quantization_config: { quant_method: 'gptq' },
          attention_dropout: 0.1,
          num_key_value_heads: 5,
        },
        'm/config.json',
      ),
    );
    expect(msg).toMatch(/m\/config\.json: hidden_act: "gelu" is not implemented/);
    expect(msg).toMatch(/mlp_bias: MLP biases are not implemented/);
    expect(msg).toMatch(/partial_rotary_factor: partial rotary embeddings \(0\.5\) are not implemented/);
    expect(msg).toMatch(
      /rope_scaling\.rope_type: "yarn" is not implemented \(mft implements linear and llama3\)/,
    );
    expect(msg).toMatch(/quantization_config: pre-quantized checkpoints/);
    expect(msg).toMatch(/attention_dropout: attention dropout 0\.1 is not implemented/);
    expect(msg).toMatch(/num_key_value_heads: 5 does not divide num_attention_heads 32/);
    expect(errorOf(() => parseModelSpec({ ...llama, rope_scaling: { type: 'dynamic', factor: 2 } }))).toMatch(
      /"dynamic" is not implemented/,
    );
  });

  test('missing or malformed sizes are named', () => {
    const { hidden_size: _, ...noHidden } = llama;
    expect(errorOf(() => parseModelSpec(noHidden))).toMatch(/hidden_size: missing/);
    expect(errorOf(() => parseModelSpec({ ...llama, vocab_size: '32000' }))).toMatch(
      /vocab_size: expected a positive integer, got "32000"/,
    );
    expect(errorOf(() => parseModelSpec([]))).toMatch(/must hold a JSON object/);
  });

  test('specHash is stable and changes with any field', () => {
    expect(specHash(parseModelSpec(llama))).toBe(specHash(parseModelSpec({ ...llama })));
    expect(specHash(parseModelSpec(llama))).not.toBe(
      specHash(parseModelSpec({ ...llama, rope_theta: 500000 })),
    );
    expect(specHash(parseModelSpec(llama))).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('loadModel checks the weights against config.json', () => {
  afterAll(removeTempDirs);

  /** A tiny model whose tensors are rewritten by `edit`. */
  function edited(
    opts: Parameters<typeof writeTinyModel>[0],
    edit: (t: { name: string; shape: number[]; data: Float32Array }[]) => typeof t,
  ): string {
    const m = writeTinyModel(opts);
    const tensors = [...m.weights].map(([name, data]) => ({
      name,
      shape: shapeOf(name, m.ref.hidden_size, m.ref.vocab_size, data.length),
      data: Float32Array.from(data),
    }));
    writeSafetensors(
      join(m.dir, 'model.safetensors'),
      edit(tensors).map((t) => ({ ...t, dtype: 'F32' as const })),
    );
    return m.dir;
  }

  function shapeOf(name: string, H: number, V: number, n: number): number[] {
    if (name.includes('embed_tokens') || name.startsWith('lm_head')) return [V, H];
    if (name.endsWith('norm.weight') || name.endsWith('.bias')) return [n];
    return name.includes('down_proj') || name.includes('o_proj') ? [H, n / H] : [n / H, H];
  }

  test('a missing tensor is named', async () => {
    const dir = edited({}, (t) => t.filter((x) => x.name !== 'model.layers.1.mlp.up_proj.weight'));
    await expect(loadModel(dir)).rejects.toThrow(/tensor model\.layers\.1\.mlp\.up_proj\.weight is missing/);
  });

  test('a wrong shape names the tensor and both shapes', async () => {
    const m = writeTinyModel({});
    writeFileSync(join(m.dir, 'config.json'), JSON.stringify({ ...m.config, intermediate_size: 20 }));
    await expect(loadModel(m.dir)).rejects.toThrow(
      /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[24,16\], config\.json implies \[20,16\]/,
    );
  });

  test('a tensor the config does not use is refused (o_proj bias on Qwen2)', async () => {
    const dir = edited({ architecture: 'Qwen2ForCausalLM' }, (t) => [
      ...t,
      { name: 'model.layers.0.self_attn.o_proj.bias', shape: [16], data: new Float32Array(16) },
    ]);
    await expect(loadModel(dir)).rejects.toThrow(/does not use: model\.layers\.0\.self_attn\.o_proj\.bias/);
  });

  test('rotary inv_freq buffers and the lm_head of a tied model are ignored, as HF does', async () => {
    const dir = edited({ tie: true }, (t) => [
      ...t,
      { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [2], data: new Float32Array(2) },
      { name: 'lm_head.weight', shape: [50, 16], data: new Float32Array(800) },
    ]);
    const model = await loadModel(dir);
    expect(model.lm_head).toBe(model.embed_tokens);
  });

  test('not a model directory', async () => {
    await expect(loadModel('/nonexistent-mft-dir')).rejects.toThrow(/no config\.json/);
  });
});
