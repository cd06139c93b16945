import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { createLora, loraFromAdapter, loraToAdapter } from '../../src/lora/lora-state.js';
import { LINEAR_NAMES } from '../../src/model/index.js';
import { MftError, mixSeed } from '../../src/util/index.js';
import { randomModel, tinyConfig } from './tiny-model.js';

const model = randomModel(tinyConfig({ num_hidden_layers: 2 }));
// [out, in] of each projection of the tiny config: hidden 32, 4 heads of 8, 2 kv heads, mlp 40
const SHAPES: Record<string, [number, number]> = {
  q_proj: [32, 32],
  k_proj: [16, 32],
  v_proj: [16, 32],
  o_proj: [32, 32],
  gate_proj: [40, 32],
  up_proj: [40, 32],
  down_proj: [32, 40],
};
const base = { r: 4, alpha: 8, dropout: 0, useRslora: false, seed: 3 };

beforeAll(async () => {
  await initBackend('wasm');
});

describe('createLora', () => {
  test('all-linear: lora_A [r, in] Kaiming-uniform and lora_B [out, r] zero on every projection', () => {
    const lora = createLora(model, { ...base, targets: 'all-linear' });
    expect(lora.variables.size).toBe(2 * 7 * 2);
    expect([...lora.variables.keys()].slice(0, 4)).toEqual([
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
      'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight',
    ]);
    for (const layer of [0, 1]) {
      for (const name of LINEAR_NAMES) {
        const parent =
          name.endsWith('_proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(name)
            ? 'mlp'
            : 'self_attn';
        const [out, inp] = SHAPES[name]!;
        const A = lora.variables.get(
          `base_model.model.model.layers.${layer}.${parent}.${name}.lora_A.weight`,
        )!;
        const B = lora.variables.get(
          `base_model.model.model.layers.${layer}.${parent}.${name}.lora_B.weight`,
        )!;
        expect(A.shape).toEqual([4, inp]);
        expect(B.shape).toEqual([out, 4]);
        expect(A.trainable && B.trainable).toBe(true);
        const a = A.dataSync();
        const bound = 1 / Math.sqrt(inp); // torch kaiming_uniform_(a=sqrt(5)) on fan_in = in
        expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
        expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.5 * bound);
        expect(B.dataSync().every((v) => v === 0)).toBe(true);
      }
    }
    expect(lora.config.scale).toBe(2);
    lora.dispose();
  });

  test('a list of targets adapts only those modules, in canonical order', () => {
    const lora = createLora(model, { ...base, targets: ['v_proj', 'self_attn.q_proj', 'down_proj'] });
    expect(lora.config.targets).toEqual(['q_proj', 'v_proj', 'down_proj']);
    expect(lora.variables.size).toBe(2 * 3 * 2);
    const ml = lora.toModelLora();
    expect(ml).toHaveLength(2);
    expect(Object.keys(ml[1]!)).toEqual(['q_proj', 'v_proj', 'down_proj']);
    lora.dispose();
  });

  test('scale is alpha / r, or alpha / sqrt(r) with rsLoRA', () => {
    const a = createLora(model, { ...base, r: 16, alpha: 32, targets: ['q_proj'] });
    const b = createLora(model, { ...base, r: 16, alpha: 32, useRslora: true, targets: ['q_proj'] });
    expect(a.config.scale).toBe(2);
    expect(b.config.scale).toBe(8);
    expect(b.toModelLora()[0]!.q_proj!.scale).toBe(8);
    a.dispose();
    b.dispose();
  });

  test('the same seed gives the same A, another seed another A', () => {
    const key = 'base_model.model.model.layers.1.mlp.up_proj.lora_A.weight';
    const a = createLora(model, { ...base, targets: 'all-linear' });
    const b = createLora(model, { ...base, targets: 'all-linear' });
    const c = createLora(model, { ...base, seed: 4, targets: 'all-linear' });
    expect(b.variables.get(key)!.dataSync()).toEqual(a.variables.get(key)!.dataSync());
    expect(c.variables.get(key)!.dataSync()).not.toEqual(a.variables.get(key)!.dataSync());
    // each matrix has its own stream: two layers' q_proj differ
    const q0 = a.variables.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.dataSync();
    const q1 = a.variables.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')!.dataSync();
    expect(q0).not.toEqual(q1);
    for (const s of [a, b, c]) s.dispose();
  });

  test('dropout seeds are mixSeed(stepSeed, layer, module index), only in training and rate > 0', () => {
    const lora = createLora(model, { ...base, dropout: 0.1, targets: ['k_proj', 'gate_proj'] });
    const train = lora.toModelLora({ stepSeed: 99 });
    expect(train[1]!.k_proj!.dropout).toEqual({ rate: 0.1, seed: mixSeed(99, 1, 1) });
    expect(train[0]!.gate_proj!.dropout).toEqual({ rate: 0.1, seed: mixSeed(99, 0, 4) });
    expect(lora.toModelLora()[1]!.k_proj!.dropout).toBeUndefined();
    lora.dispose();
    const noDrop = createLora(model, { ...base, targets: ['k_proj'] });
    expect(noDrop.toModelLora({ stepSeed: 99 })[0]!.k_proj!.dropout).toBeUndefined();
    noDrop.dispose();
  });

  test('an unknown module is an MftError listing the valid names', () => {
    expect(() => createLora(model, { ...base, targets: ['q_proj', 'qkv_proj'] })).toThrow(
      /lora_target_modules: the model has no linear layer named "qkv_proj" \(fix: valid names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or all-linear\)/,
    );
    expect(() => createLora(model, { ...base, targets: ['lm_head'] })).toThrow(
      /lm_head cannot carry a LoRA adapter/,
    );
    expect(() => createLora(model, { ...base, targets: [] })).toThrow(MftError);
    expect(() => createLora(model, { ...base, targets: ['mlp.q_proj'] })).toThrow(
      /no linear layer named "mlp.q_proj"/,
    );
  });

  test('bad r, alpha or dropout are MftErrors naming the key', () => {
    expect(() => createLora(model, { ...base, r: 0, targets: 'all-linear' })).toThrow(
      /lora_r: must be a positive integer, got 0/,
    );
    expect(() => createLora(model, { ...base, alpha: -1, targets: 'all-linear' })).toThrow(
      /lora_alpha: must be > 0/,
    );
    expect(() => createLora(model, { ...base, dropout: 1, targets: 'all-linear' })).toThrow(
      /lora_dropout: must be in \[0, 1\)/,
    );
  });

  test('dispose frees every variable', () => {
    const before = tf.memory().numTensors;
    const lora = createLora(model, { ...base, targets: 'all-linear' });
    expect(tf.memory().numTensors).toBe(before + 28);
    lora.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('PEFT adapter mapping', () => {
  function trainedLora() {
    const lora = createLora(model, { ...base, dropout: 0.05, targets: ['q_proj', 'v_proj', 'up_proj'] });
    for (const v of lora.variables.values()) v.assign(tf.randomUniform(v.shape, -1, 1, 'float32', 5));
    return lora;
  }

  test('loraToAdapter writes the PEFT config fields and fp32 copies of every tensor', async () => {
    const lora = trainedLora();
    const adapter = await loraToAdapter(lora);
    expect(adapter.config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0.05,
      target_modules: ['q_proj', 'v_proj', 'up_proj'],
      bias: 'none',
      fan_in_fan_out: false,
      use_rslora: false,
      base_model_name_or_path: 'tiny-random',
      inference_mode: true,
    });
    expect([...adapter.tensors.keys()]).toEqual([...lora.variables.keys()]);
    const key = 'base_model.model.model.layers.1.mlp.up_proj.lora_B.weight';
    const t = adapter.tensors.get(key)!;
    expect(t.shape).toEqual([40, 4]);
    expect(t.data).toBeInstanceOf(Float32Array);
    const copy = Float32Array.from(t.data);
    // a copy: training on does not change a saved adapter
    lora.variables.get(key)!.assign(tf.zeros([40, 4]));
    expect(t.data).toEqual(copy);
    expect(adapter.training).toBeUndefined();
    lora.dispose();
  });

  test('loraFromAdapter reproduces the weights and hyperparameters', async () => {
    const lora = trainedLora();
    const adapter = await loraToAdapter(lora);
    const back = loraFromAdapter(model, adapter);
    expect(back.config).toEqual(lora.config);
    for (const [k, v] of lora.variables) expect(back.variables.get(k)!.dataSync()).toEqual(v.dataSync());
    lora.dispose();
    back.dispose();
  });

  test('a missing tensor, a wrong shape or an unknown key is an MftError naming the tensor', async () => {
    const lora = trainedLora();
    const good = await loraToAdapter(lora);
    lora.dispose();
    const before = tf.memory().numTensors;
    const qA = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';

    const missing = { ...good, tensors: new Map(good.tensors) };
    missing.tensors.delete(qA);
    expect(() => loraFromAdapter(model, missing)).toThrow(
      /adapter_model.safetensors: base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight: missing/,
    );

    const wrong = { ...good, tensors: new Map(good.tensors) };
    wrong.tensors.set(qA, { shape: [4, 30], data: new Float32Array(120) });
    expect(() => loraFromAdapter(model, wrong)).toThrow(
      /q_proj.lora_A.weight: shape \[4, 30\] does not fit the base model: expected \[4, 32\]/,
    );

    const extra = { ...good, tensors: new Map(good.tensors) };
    extra.tensors.set('base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight', {
      shape: [4, 32],
      data: new Float32Array(128),
    });
    extra.tensors.set('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight', {
      shape: [4, 32],
      data: new Float32Array(128),
    });
    extra.tensors.set('base_model.model.lm_head.lora_A.weight', {
      shape: [4, 32],
      data: new Float32Array(128),
    });
    let err: unknown;
    try {
      loraFromAdapter(model, extra);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MftError);
    const messages = (err as MftError).problems.map((p) => `${p.where}: ${p.message}`).join('\n');
    expect(messages).toMatch(
      /layers.5.self_attn.q_proj.lora_A.weight: layer 5 does not exist: the base model has 2 layers/,
    );
    expect(messages).toMatch(/layers.0.self_attn.k_proj.lora_A.weight: k_proj is not in target_modules/);
    expect(messages).toMatch(/lm_head.lora_A.weight: not a LoRA weight of a decoder layer/);

    const badConfig = { ...good, config: { ...good.config, target_modules: ['q_proj', 'w_proj'] } };
    expect(() => loraFromAdapter(model, badConfig)).toThrow(
      /adapter_config.json: target_modules: the model has no linear layer named "w_proj"/,
    );
    // nothing leaked from the failed loads
    expect(tf.memory().numTensors).toBe(before);
  });
});
