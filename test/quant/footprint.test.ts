/**
 * Measured figures for README: dequantization speed on a 4096x4096 matrix, and the memory of a
 * quantized Llama-shaped base split into linear weights and the unquantized rest.
 * Reproduce with: npx vitest run test/quant/footprint.test.ts (figures print to stdout).
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { forward, loadModel } from '../../src/model/index.js';
import { dequantize, quantize, quantizedByteLength } from '../../src/quant/index.js';
import { randomNormal } from './reference.js';

const TINYSTORIES = new URL('../../checkpoints/base/tinystories-260k/', import.meta.url).pathname;
const STORY_IDS = new URL('../fixtures/stories260K/greedy_t0_n256_noprompt.ids.txt', import.meta.url)
  .pathname;

describe('footprint', () => {
  test('dequantization speed of a 4096x4096 matrix (values per second)', () => {
    const n = 4096 * 4096;
    const values = randomNormal(n, 1, 0.02);
    const out = new Float32Array(n);
    const lines: string[] = [];
    for (const [kind, doubleQuant] of [
      ['nf4', true],
      ['int8', false],
    ] as const) {
      const t0 = performance.now();
      const t = quantize('w', [4096, 4096], values, kind, { doubleQuant });
      const quantMs = performance.now() - t0;
      dequantize(t, out); // warm-up: JIT and first touch of `out`
      let best = Number.POSITIVE_INFINITY;
      for (let r = 0; r < 3; r++) {
        const t1 = performance.now();
        dequantize(t, out);
        best = Math.min(best, performance.now() - t1);
      }
      const perSecond = n / (best / 1000);
      lines.push(
        `${kind}${doubleQuant ? '+dq' : ''}: quantize ${quantMs.toFixed(0)} ms, dequantize ${best.toFixed(1)} ms ` +
          `(${(perSecond / 1e6).toFixed(0)} M values/s), ${(t.byteLength / n).toFixed(4)} bytes/param`,
      );
      // A loose floor that still catches a per-value allocation or a per-value codebook search.
      expect(perSecond).toBeGreaterThan(30e6);
    }
    console.log(`dequantize 4096x4096 (into a reused buffer):\n  ${lines.join('\n  ')}`);
  });

  test('memory of a quantized base: linear weights vs embeddings, lm_head and norms', () => {
    // Llama-2-7B and TinyLlama-1.1B shapes (config.json of each); the rest stays in bf16 (2 bytes).
    const models = [
      {
        name: 'TinyLlama-1.1B',
        hidden: 2048,
        kvDim: 256,
        inter: 5632,
        layers: 22,
        vocab: 32000,
        tied: false,
      },
      { name: 'Llama-2-7B', hidden: 4096, kvDim: 4096, inter: 11008, layers: 32, vocab: 32000, tied: false },
    ];
    const lines: string[] = [];
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
      const restParams = m.vocab * m.hidden * (m.tied ? 1 : 2) + m.hidden * (2 * m.layers + 1);
      const gb = (b: number) => (b / 2 ** 30).toFixed(2);
      const nf4 = bytesOf('nf4', true);
      const int8 = bytesOf('int8', false);
      lines.push(
        `${m.name}: linears ${(linearParams / 1e6).toFixed(0)}M params: nf4+dq ${gb(nf4)} GiB ` +
          `(${(nf4 / linearParams).toFixed(4)} B/param), int8 ${gb(int8)} GiB (${(int8 / linearParams).toFixed(4)} B/param), ` +
          `bf16 ${gb(2 * linearParams)} GiB; rest (embed, lm_head, norms) ${(restParams / 1e6).toFixed(0)}M params ` +
          `in bf16 ${gb(2 * restParams)} GiB`,
      );
      expect(nf4 / linearParams).toBeLessThanOrEqual(0.52);
      expect(int8 / linearParams).toBeLessThanOrEqual(1.07);
    }
    console.log(lines.join('\n'));
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
    console.log(
      `TinyStories-260K, 256 tokens of its own greedy story: loss fp32 ${losses.none!.toFixed(4)}, ` +
        `int8 ${losses.int8!.toFixed(4)}, nf4+dq ${losses.nf4!.toFixed(4)}`,
    );
    expect(Math.abs(losses.int8! - losses.none!) / losses.none!).toBeLessThan(0.01);
    expect(losses.nf4).not.toBe(losses.none);
  });
});
