/**
 * The llama-golden fixture: logits and losses computed outside this project by an independent
 * PyTorch implementation (llama2.c's model.py) in float64 (see test/fixtures/llama-golden/README.md).
 * Matching: logits max |ours - ref| / max |ref| < 1e-4, losses within 1e-4, on wasm AND cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Batch } from '../../src/model/batch.js';
import { forward, LINEAR_NAMES, type LoadedModel, loadModel, type ModelLora } from '../../src/model/index.js';
import { SafetensorsFile } from '../../src/weights/index.js';
import { goldenRows, useBackend } from '../helpers/backends.js';
import { causalBatch, GOLDEN_DIR, relMaxErr } from '../helpers/golden.js';

const golden = SafetensorsFile.open(`${GOLDEN_DIR}golden.safetensors`);
const ref = (name: string) => golden.read(name).data as Float32Array | Int32Array;
const goldenJson = (await import('../fixtures/llama-golden/golden.json', { with: { type: 'json' } })).default;

/** The adapter of adapter/ as the model consumes it (scale lora_alpha / r = 2), read directly. */
function adapterLora(): ModelLora {
  const f = SafetensorsFile.open(`${GOLDEN_DIR}adapter/adapter_model.safetensors`);
  const lora: ModelLora = [];
  for (let i = 0; i < 2; i++) {
    lora.push({});
    for (const name of LINEAR_NAMES) {
      const part =
        name.endsWith('proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(name) ? 'mlp' : 'self_attn';
      const key = (ab: 'A' | 'B') => `base_model.model.model.layers.${i}.${part}.${name}.lora_${ab}.weight`;
      const A = f.read(key('A'));
      const B = f.read(key('B'));
      (lora[i] as Record<string, unknown>)[name] = {
        A: tf.tensor2d(A.data as Float32Array, A.shape as [number, number]),
        B: tf.tensor2d(B.data as Float32Array, B.shape as [number, number]),
        scale: goldenJson.lora_scaling,
      };
    }
  }
  f.close();
  return lora;
}

describe.each(goldenRows('llama-golden'))('llama-golden on %s, %s kernels', (backend, kernels) => {
  let model: LoadedModel;
  beforeAll(async () => {
    await useBackend(backend, kernels);
    model = await loadModel(GOLDEN_DIR);
  });

  test('plain batch: logits and mean loss match the float64 reference', async () => {
    const batch = causalBatch(ref('input_ids') as Int32Array, 2, 24);
    const out = await forward(model, batch, { returnLogits: true });
    expect(relMaxErr(out.logits as Float32Array, ref('logits'))).toBeLessThan(1e-4);
    expect(out.count).toBe(2 * 23);
    expect(Math.abs(out.lossSum / out.count - goldenJson.loss)).toBeLessThan(1e-4);
  });

  test('packed row: three documents each attend only to themselves', async () => {
    const ids = ref('packed_input_ids') as Int32Array;
    const batch: Batch = {
      batchSize: 1,
      seqLen: ids.length,
      inputIds: ids,
      labels: new Int32Array(ids.length).fill(-100),
      segmentIds: ref('packed_segment_ids') as Int32Array,
      positionIds: ref('packed_position_ids') as Int32Array,
    };
    const out = await forward(model, batch, { returnLogits: true });
    expect(out.count).toBe(0);
    expect(out.lossSum).toBe(0);
    expect(relMaxErr(out.logits as Float32Array, ref('packed_logits'))).toBeLessThan(1e-4);
  });

  test('LoRA on all seven projections: logits and loss match', async () => {
    const lora = adapterLora();
    try {
      const batch = causalBatch(ref('input_ids') as Int32Array, 2, 24);
      const out = await forward(model, batch, { returnLogits: true, lora });
      expect(relMaxErr(out.logits as Float32Array, ref('lora_logits'))).toBeLessThan(1e-4);
      expect(Math.abs(out.lossSum / out.count - goldenJson.lora_loss)).toBeLessThan(1e-4);
    } finally {
      for (const layer of lora) for (const p of Object.values(layer)) tf.dispose([p.A, p.B]);
    }
  });

  test('forward leaves no tensors behind', async () => {
    const batch = causalBatch(ref('input_ids') as Int32Array, 2, 24);
    await forward(model, batch);
    const before = tf.memory().numTensors;
    for (let k = 0; k < 3; k++) await forward(model, batch, { returnLogits: true });
    expect(tf.memory().numTensors).toBe(before);
  });
});

afterAll(() => golden.close());
