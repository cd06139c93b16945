import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { loraFromAdapter } from '../../src/lora/index.js';
import { loadAdapter, type MftTrainingInfo, saveAdapter } from '../../src/lora/peft-adapter.js';
import { forward, loadModel } from '../../src/model/index.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { writeSafetensors } from '../../src/weights/safetensors-writer.js';
import { errorOf } from '../helpers/error-of.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const FIXTURE = 'test/fixtures/llama-golden/adapter';
const root = fileTempDir('peft');
let n = 0;

const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')) as Record<
  string,
  unknown
>;
const LINEARS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** An adapter dir with the fixture's weights and a config edited by `edit`. */
function withConfig(edit: (c: Record<string, unknown>) => void): string {
  const dir = join(root, `a${n++}`);
  mkdirSync(dir);
  copyFileSync(join(FIXTURE, 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'));
  const c = structuredClone(fixtureConfig);
  edit(c);
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(c));
  return dir;
}

describe('loadAdapter', () => {
  test('reads the PEFT-written fixture adapter', () => {
    const a = loadAdapter(FIXTURE);
    expect(a.config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0,
      use_rslora: false,
    });
    expect(a.config.target_modules).toEqual(LINEARS);
    expect(a.tensors.size).toBe(2 * 7 * 2);
    expect(a.training).toBeUndefined();
    expect(a.tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')?.shape).toEqual([
      4, 160,
    ]);
    expect(a.tensors.get('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight')?.shape).toEqual([
      32, 4,
    ]);
    // Values: compare with a DataView decode of the raw file at the header's offsets.
    const bytes = readFileSync(join(FIXTURE, 'adapter_model.safetensors'));
    const hl = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + hl).toString('utf8'));
    const key = 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight';
    const [begin] = header[key].data_offsets as [number, number];
    const got = a.tensors.get(key)?.data as Float32Array;
    for (let i = 0; i < got.length; i++) expect(got[i]).toBe(bytes.readFloatLE(8 + hl + begin + 4 * i));
  });

  test('widens a bf16 adapter to fp32', () => {
    const dir = join(root, 'bf16');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'adapter_config.json'),
      JSON.stringify({ ...fixtureConfig, r: 1, target_modules: ['q_proj'] }),
    );
    writeSafetensors(join(dir, 'adapter_model.safetensors'), [
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
        dtype: 'BF16',
        shape: [1, 2],
        data: new Uint16Array([0x3fc0, 0xc000]),
      },
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
        dtype: 'F32',
        shape: [2, 1],
        data: new Float32Array([3, 4]),
      },
    ]);
    const a = loadAdapter(dir);
    expect([
      ...(a.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.data ?? []),
    ]).toEqual([1.5, -2]);
  });

  const refusals: [string, (c: Record<string, unknown>) => void, string][] = [
    [
      'rank_pattern',
      (c) => (c.rank_pattern = { q_proj: 8 }),
      'rank_pattern: {"q_proj":8} (per-module ranks) is not supported by mft (fix: remove rank_pattern or use an adapter trained without it)',
    ],
    [
      'alpha_pattern',
      (c) => (c.alpha_pattern = { v_proj: 32 }),
      'alpha_pattern: {"v_proj":32} (per-module alphas) is not supported by mft',
    ],
    ['use_dora', (c) => (c.use_dora = true), 'use_dora: true (DoRA) is not supported by mft'],
    [
      'modules_to_save',
      (c) => (c.modules_to_save = ['lm_head']),
      'modules_to_save: ["lm_head"] (extra fully trained modules) is not supported by mft',
    ],
    ['lora_bias', (c) => (c.lora_bias = true), 'lora_bias: true (LoRA biases) is not supported by mft'],
    [
      'regex target_modules',
      (c) => (c.target_modules = '.*\\.(q|v)_proj'),
      'target_modules: the regular expression ".*\\\\.(q|v)_proj" is not supported',
    ],
    ['bias', (c) => (c.bias = 'lora_only'), 'bias: "lora_only" is not supported (only "none")'],
    [
      'layers_to_transform',
      (c) => (c.layers_to_transform = [0]),
      'layers_to_transform: [0] (adapting only some layers) is not supported by mft',
    ],
    ['peft_type', (c) => (c.peft_type = 'IA3'), 'peft_type: "IA3" is not supported; mft reads LoRA adapters'],
  ];
  for (const [name, edit, message] of refusals) {
    test(`refuses ${name}, naming the field`, () => {
      const dir = withConfig(edit);
      expect(errorOf(() => loadAdapter(dir))).toContain(`${join(dir, 'adapter_config.json')}: ${message}`);
    });
  }

  test('accepts target_modules "all-linear" and PEFT keys it does not need', () => {
    const a = loadAdapter(
      withConfig((c) => {
        c.target_modules = 'all-linear';
        c.loftq_config = {};
        c.revision = null;
        c.megatron_core = 'megatron.core';
      }),
    );
    expect(a.config.target_modules).toBe('all-linear');
  });

  test('a rank that does not match r names the tensor', () => {
    const dir = withConfig((c) => (c.r = 8));
    const msg = errorOf(() => loadAdapter(dir));
    expect(msg).toContain(
      `${join(dir, 'adapter_model.safetensors')}: base_model.model.model.layers.0.mlp.down_proj.lora_A.weight: shape [4, 160] is not [8, in] for r = 8`,
    );
  });

  test('an unpaired or foreign tensor is an error', () => {
    const dir = join(root, 'odd');
    mkdirSync(dir);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...fixtureConfig, r: 1 }));
    writeSafetensors(join(dir, 'adapter_model.safetensors'), [
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
        dtype: 'F32',
        shape: [1, 2],
        data: new Float32Array(2),
      },
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector',
        dtype: 'F32',
        shape: [2],
        data: new Float32Array(2),
      },
    ]);
    const msg = errorOf(() => loadAdapter(dir));
    expect(msg).toContain(
      'q_proj.lora_A.weight: has no matching base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
    );
    expect(msg).toContain('q_proj.lora_magnitude_vector: not a lora_A / lora_B weight');
  });

  test('missing files are named', () => {
    const dir = join(root, 'none');
    mkdirSync(dir);
    expect(errorOf(() => loadAdapter(dir))).toContain(`${dir}: no adapter_config.json in this directory`);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(fixtureConfig));
    writeFileSync(join(dir, 'adapter_model.bin'), 'x');
    expect(errorOf(() => loadAdapter(dir))).toContain('adapter_model.bin (pickle) is not supported');
  });
});

describe('saveAdapter', () => {
  test('writes the fixture layout: keys, dtypes, shapes, metadata, config fields', () => {
    const src = loadAdapter(FIXTURE);
    const dir = join(root, 'saved');
    saveAdapter(dir, src);
    const ours = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    const ref = SafetensorsFile.open(join(FIXTURE, 'adapter_model.safetensors'));
    expect(ours.names()).toEqual(ref.names());
    expect(ours.metadata).toEqual({ format: 'pt' });
    expect(ours.metadata).toEqual(ref.metadata);
    for (const name of ref.names()) {
      expect(ours.info(name)).toEqual(ref.info(name));
      expect(Buffer.from((ours.read(name).data as Float32Array).buffer)).toEqual(
        Buffer.from((ref.read(name).data as Float32Array).buffer),
      );
    }
    ours.close();
    ref.close();
    const text = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
    const config = JSON.parse(text) as Record<string, unknown>;
    for (const [k, v] of Object.entries(fixtureConfig)) expect(config[k], k).toEqual(v);
    // PEFT's other keys at their defaults, keys sorted as PEFT writes them.
    expect(config).toMatchObject({
      rank_pattern: {},
      alpha_pattern: {},
      use_dora: false,
      modules_to_save: null,
      init_lora_weights: true,
    });
    expect(Object.keys(config)).toEqual(Object.keys(config).sort());
    // Round trip.
    const back = loadAdapter(dir);
    expect(back.config).toEqual({ ...config, lora_alpha: 8 });
    for (const [k, t] of src.tensors) expect(back.tensors.get(k)).toEqual(t);
  });

  test('writes mft_training.json and reads it back', () => {
    const training: MftTrainingInfo = {
      base_model: '/m/base',
      config_hash: 'abc123',
      quantization: 'nf4',
      double_quant: true,
      precision: 'bf16',
    };
    const dir = join(root, 'trained');
    saveAdapter(dir, { ...loadAdapter(FIXTURE), training });
    expect(JSON.parse(readFileSync(join(dir, 'mft_training.json'), 'utf8'))).toEqual(training);
    expect(loadAdapter(dir).training).toEqual(training);
    writeFileSync(join(dir, 'mft_training.json'), JSON.stringify({ ...training, quantization: 'int4' }));
    expect(errorOf(() => loadAdapter(dir))).toContain(
      'quantization: expected "none", "int8" or "nf4", got "int4"',
    );
  });

  test('refuses to save a config mft cannot apply', () => {
    const a = loadAdapter(FIXTURE);
    expect(() => saveAdapter(join(root, 'no'), { ...a, config: { ...a.config, use_dora: true } })).toThrow(
      'use_dora: true (DoRA)',
    );
  });
});

test('a saved and reloaded adapter reproduces the fixture lora_logits (computed outside mft)', async () => {
  await initBackend('wasm');
  const dir = join(root, 'reloaded');
  saveAdapter(dir, loadAdapter(FIXTURE));
  const model = await loadModel('test/fixtures/llama-golden');
  const lora = loraFromAdapter(model, loadAdapter(dir));
  const golden = SafetensorsFile.open('test/fixtures/llama-golden/golden.safetensors');
  const ids = golden.read('input_ids').data as Int32Array;
  const ref = golden.read('lora_logits').data as Float32Array;
  golden.close();
  const T = 24;
  const positionIds = Int32Array.from(ids, (_, i) => i % T);
  const batch = {
    batchSize: 2,
    seqLen: T,
    inputIds: ids,
    labels: new Int32Array(2 * T).fill(-100),
    segmentIds: new Int32Array(2 * T),
    positionIds,
  };
  const logits = (await forward(model, batch, { lora: lora.toModelLora(), returnLogits: true }))
    .logits as Float32Array;
  lora.dispose();
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs((logits[i] as number) - (ref[i] as number)));
    maxRef = Math.max(maxRef, Math.abs(ref[i] as number));
  }
  expect(maxDiff / maxRef).toBeLessThan(1e-4);
});
