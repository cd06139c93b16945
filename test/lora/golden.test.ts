/**
 * The LoRA golden of test/fixtures/llama-golden (README.md there): the fixture's PEFT adapter on
 * the tiny Llama, against logits, loss and LoRA gradients computed by an independent PyTorch
 * implementation in float64. Run on wasm and cpu.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { lossAndGrads } from '../../src/lora/layerwise-grads.js';
import { loraFromAdapter, loraToAdapter } from '../../src/lora/lora-state.js';
import { loadAdapter, saveAdapter } from '../../src/lora/peft-adapter.js';
import type { Batch } from '../../src/model/batch.js';
import { forward, type LoadedModel, loadModel } from '../../src/model/index.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { goldenRows, useBackend } from '../helpers/backends.js';
import { causalBatch, relMaxErr } from '../helpers/golden.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'llama-golden');

const golden = SafetensorsFile.open(join(FIXTURE, 'golden.safetensors'));
const goldenGrads = SafetensorsFile.open(join(FIXTURE, 'lora_grads.safetensors'));
const inputIds = golden.read('input_ids').data as Int32Array; // [2, 24]
const loraLogits = golden.read('lora_logits').data as Float32Array; // [2, 24, 384]
const loraLoss = (golden.read('lora_loss').data as Float32Array)[0]!; // mean over 2 * 23 predictions
const baseLogits = golden.read('logits').data as Float32Array;

/** The golden batch: two rows of 24 tokens, next-token labels, the last position carries no loss. */
const goldenBatch = (): Batch => causalBatch(inputIds, 2, 24);

afterAll(() => {
  golden.close();
  goldenGrads.close();
});

describe.each(goldenRows('llama-golden LoRA'))('llama-golden LoRA on %s, %s kernels', (backend, kernels) => {
  let model: LoadedModel;
  const batch = goldenBatch();

  beforeAll(async () => {
    await useBackend(backend, kernels);
    model = await loadModel(FIXTURE);
  });

  test('the PEFT adapter reproduces lora_logits and lora_loss', async () => {
    expect(tf.getBackend()).toBe(backend);
    const lora = loraFromAdapter(model, loadAdapter(join(FIXTURE, 'adapter')));
    expect(lora.config.scale).toBe(2); // lora_alpha / r = 8 / 4
    const out = await forward(model, batch, { lora: lora.toModelLora(), returnLogits: true });
    expect(relMaxErr(out.logits!, loraLogits)).toBeLessThan(1e-4);
    // the adapter matters: the base logits are far from the LoRA ones
    expect(relMaxErr(baseLogits, loraLogits)).toBeGreaterThan(1e-2);
    expect(out.count).toBe(46);
    expect(Math.abs(out.lossSum / out.count - loraLoss)).toBeLessThan(1e-4);
    lora.dispose();
  });

  test.each([true, false])(
    'every LoRA gradient matches lora_grads.safetensors (checkpointing %s)',
    async (checkpointing) => {
      const lora = loraFromAdapter(model, loadAdapter(join(FIXTURE, 'adapter')));
      // the golden gradients are of the MEAN loss: lossScale = 1 / count
      const r = await lossAndGrads(model, lora, batch, { lossScale: 1 / 46, checkpointing });
      expect(r.count).toBe(46);
      expect(Math.abs(r.lossSum / r.count - loraLoss)).toBeLessThan(1e-4);
      expect([...r.grads.keys()].sort()).toEqual(goldenGrads.names().sort());
      for (const [key, g] of r.grads) {
        const ref = goldenGrads.read(key);
        expect(g.shape, key).toEqual(ref.shape);
        expect(relMaxErr(await g.data(), ref.data as Float32Array), key).toBeLessThan(1e-3);
      }
      tf.dispose([...r.grads.values()]);
      lora.dispose();
    },
  );

  test('save (loraToAdapter + saveAdapter), reload: the same logits', async () => {
    const lora = loraFromAdapter(model, loadAdapter(join(FIXTURE, 'adapter')));
    const before = await forward(model, batch, { lora: lora.toModelLora(), returnLogits: true });
    const dir = makeTempDir('lora-golden');
    try {
      saveAdapter(dir, await loraToAdapter(lora));
      lora.dispose();
      // the fixture's (PEFT's) layout: same keys, shapes, fp32, metadata {"format": "pt"}
      const ours = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
      const theirs = SafetensorsFile.open(join(FIXTURE, 'adapter', 'adapter_model.safetensors'));
      expect(ours.metadata).toEqual({ format: 'pt' });
      expect(ours.names().sort()).toEqual(theirs.names().sort());
      for (const name of theirs.names()) expect(ours.info(name), name).toEqual(theirs.info(name));
      ours.close();
      theirs.close();
      const reloaded = loadAdapter(dir);
      expect(reloaded.config).toMatchObject({ r: 4, lora_alpha: 8, use_rslora: false, peft_type: 'LORA' });
      const back = loraFromAdapter(model, reloaded);
      const after = await forward(model, batch, { lora: back.toModelLora(), returnLogits: true });
      expect(after.logits).toEqual(before.logits);
      expect(relMaxErr(after.logits!, loraLogits)).toBeLessThan(1e-4);
      back.dispose();
    } finally {
      removeTempDirs();
    }
  });
});
