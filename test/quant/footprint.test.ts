/**
 * What quantizing a base costs: bytes per parameter of Llama-shaped linear weights, and how much
 * each storage changes the shipped base model's loss. (Speeds are measured in bench/, section 5.)
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { forward, loadModel } from '../../src/model/index.js';
import { quantizedByteLength } from '../../src/quant/index.js';

const TINYSTORIES = new URL('../../checkpoints/base/tinystories-260k/', import.meta.url).pathname;
const STORY_IDS = new URL('../fixtures/stories260K/greedy_t0_n256_noprompt.ids.txt', import.meta.url)
  .pathname;

describe('footprint', () => {
  test('bytes per parameter of quantized Llama-shaped linear weights', () => {
    // Llama-2-7B and TinyLlama-1.1B shapes (config.json of each).
    const models = [
      { name: 'TinyLlama-1.1B', hidden: 2048, kvDim: 256, inter: 5632, layers: 22 },
      { name: 'Llama-2-7B', hidden: 4096, kvDim: 4096, inter: 11008, layers: 32 },
    ];
    for (const m of models) {
      const shapes = [
        [m.hidden, m.hidden],
        [m.kvDim, m.hidden],
        [m.kvDim, m.hidden],
        [m.hidden, m.hidden],
        [m.inter, m.hidden],
        [m.inter, m.hidden],
        [m.hidden, m.inter],
      ];
      const linearParams = m.layers * shapes.reduce((s, [o, i]) => s + o! * i!, 0);
      const bytesOf = (kind: 'nf4' | 'int8', dq: boolean) =>
        m.layers * shapes.reduce((s, sh) => s + quantizedByteLength(sh, kind, dq), 0);
      const nf4 = bytesOf('nf4', true);
      const int8 = bytesOf('int8', false);
      expect(nf4 / linearParams, m.name).toBeLessThanOrEqual(0.52);
      expect(int8 / linearParams, m.name).toBeLessThanOrEqual(1.07);
    }
  });

  // The shipped base model (trained, 64 wide): how much each storage changes its loss on a story.
  test.skipIf(!existsSync(TINYSTORIES))('loss of the TinyStories-260K base per storage (wasm)', async () => {
    await initBackend('wasm');
    const ids = readFileSync(STORY_IDS, 'utf8').trim().split(/\s+/).map(Number).slice(0, 256);
    const T = ids.length;
    const labels = Int32Array.from({ length: T }, (_, t) => (t < T - 1 ? ids[t + 1]! : -100));
    const batch = {
      batchSize: 1,
      seqLen: T,
      inputIds: Int32Array.from(ids),
      labels,
      segmentIds: new Int32Array(T),
      positionIds: Int32Array.from({ length: T }, (_, t) => t),
    };
    const losses: Record<string, number> = {};
    for (const quantization of ['none', 'int8', 'nf4'] as const) {
      const model = await loadModel(TINYSTORIES, { quantization, doubleQuant: quantization === 'nf4' });
      const out = await forward(model, batch);
      losses[quantization] = out.lossSum / out.count;
    }
    expect(Math.abs(losses.int8! - losses.none!) / losses.none!).toBeLessThan(0.01);
    expect(losses.nf4).not.toBe(losses.none);
  });
});
