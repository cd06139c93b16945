/**
 * The decoder against an independent float64 reference (reference-decoder.ts) on tiny random
 * checkpoints written to disk: Mistral's sliding window, an explicit head_dim, linear and llama3
 * RoPE scaling, Qwen2 biases with tied embeddings, Llama attention_bias, packing, bf16 / NF4
 * storage; and the gradients of the layer-wise pieces against float64 finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import type { Batch } from '../../src/model/batch.js';
import {
  createAttentionContext,
  decoderLayer,
  disposeLayerTensors,
  dropout,
  dropoutMask,
  embedTokens,
  forward,
  headLossSum,
  type LoadModelOptions,
  layerTensors,
  linear,
  loadModel,
  type ModelLora,
} from '../../src/model/index.js';
import { Rng } from '../../src/util/index.js';
import { removeTempDirs } from '../helpers/tmp-dir.js';
import { type RefWeights, referenceLogits, referenceLossSum } from './reference-decoder.js';
import { type TinyModel, type TinyOptions, writeTinyModel } from './tiny-model.js';

afterAll(removeTempDirs);
beforeAll(async () => {
  await initBackend('wasm');
});

/** A tiny model written to a temporary folder (removed after the file's tests). */
const tiny = (opts: TinyOptions): TinyModel => writeTinyModel(opts);

interface Row {
  ids: number[];
  segments?: number[];
  positions?: number[];
}

function makeBatch(rows: Row[]): Batch {
  const B = rows.length;
  const T = rows[0]?.ids.length ?? 0;
  const flat = (f: (r: Row) => number[]) => Int32Array.from(rows.flatMap(f));
  const labels = Int32Array.from(
    rows.flatMap((r) =>
      r.ids.map((_, t) =>
        t + 1 < T && (r.segments?.[t + 1] ?? 0) === (r.segments?.[t] ?? 0) ? r.ids[t + 1]! : -100,
      ),
    ),
  );
  return {
    batchSize: B,
    seqLen: T,
    inputIds: flat((r) => r.ids),
    labels,
    segmentIds: flat((r) => r.segments ?? r.ids.map(() => 0)),
    positionIds: flat((r) => r.positions ?? r.ids.map((_, t) => t)),
  };
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
}

/** max |ours - ref| / max |ref| over every row's logits, and the loss difference. */
async function compare(
  m: TinyModel,
  rows: Row[],
  opts: LoadModelOptions = {},
  weights: RefWeights = m.weights,
) {
  const model = await loadModel(m.dir, opts);
  const batch = makeBatch(rows);
  const out = await forward(model, batch, { returnLogits: true, chunkSize: 5 });
  const V = m.ref.vocab_size;
  const T = batch.seqLen;
  let maxDiff = 0;
  let maxRef = 0;
  let refSum = 0;
  let refCount = 0;
  rows.forEach((r, b) => {
    const ref = referenceLogits(m.ref, weights, r.ids, r.segments, r.positions);
    for (let i = 0; i < T * V; i++) {
      maxDiff = Math.max(maxDiff, Math.abs((out.logits?.[b * T * V + i] as number) - (ref[i] as number)));
      maxRef = Math.max(maxRef, Math.abs(ref[i] as number));
    }
    const loss = referenceLossSum(ref, V, Array.from(batch.labels.subarray(b * T, (b + 1) * T)));
    refSum += loss.sum;
    refCount += loss.count;
  });
  return {
    rel: maxDiff / maxRef,
    lossDiff: Math.abs(out.lossSum - refSum) / refCount,
    count: out.count,
    refCount,
    model,
  };
}

describe('forward against the float64 reference', () => {
  test('Mistral sliding window: a query sees only the last W keys (itself included)', async () => {
    const m = tiny({
      architecture: 'MistralForCausalLM',
      extra: { sliding_window: 3 },
      windows: [3, 3],
      scale: 1.5,
    });
    const r = await compare(m, [{ ids: randomIds(12, 50, 1) }, { ids: randomIds(12, 50, 2) }]);
    expect(r.model.spec.sliding_window).toEqual([3, 3]);
    expect(r.rel).toBeLessThan(1e-4);
    expect(r.lossDiff).toBeLessThan(1e-4);
    expect(r.count).toBe(r.refCount);
    // The window matters: the same weights with full attention give different logits.
    const full = { ...m.ref, windows: [null, null] };
    const a = referenceLogits(m.ref, m.weights, randomIds(12, 50, 1));
    const b = referenceLogits(full, m.weights, randomIds(12, 50, 1));
    expect(Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))))).toBeGreaterThan(1e-3);
  });

  test('explicit head_dim different from hidden / heads sets the q/k/v/o shapes and the scale', async () => {
    const m = tiny({ hidden: 16, heads: 4, kvHeads: 2, headDim: 8, scale: 1.5 });
    const r = await compare(m, [{ ids: randomIds(9, 50, 3) }]);
    expect(r.model.spec.head_dim).toBe(8);
    expect(r.model.layers[0]?.q_proj.shape).toEqual([32, 16]);
    expect(r.rel).toBeLessThan(1e-4);
    expect(r.lossDiff).toBeLessThan(1e-4);
  });

  test('rope_scaling linear', async () => {
    const m = tiny({ headDim: 8, ropeScaling: { rope_type: 'linear', factor: 4 }, scale: 1.5 });
    const rows = [{ ids: randomIds(8, 50, 4), positions: [100, 101, 102, 103, 104, 105, 106, 107] }];
    const r = await compare(m, rows);
    expect(r.model.spec.rope_scaling).toEqual({ rope_type: 'linear', factor: 4 });
    expect(r.rel).toBeLessThan(1e-4);
  });

  test('rope_scaling llama3 (kept, smoothed and divided frequency bands all present)', async () => {
    const scaling = {
      rope_type: 'llama3' as const,
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    };
    // head_dim 8, theta 10000: wavelengths 6.3, 63, 628, 6283 against the band [16, 64].
    const m = tiny({ headDim: 8, ropeScaling: scaling, scale: 1.5 });
    const r = await compare(m, [{ ids: randomIds(8, 50, 5), positions: [40, 41, 42, 43, 44, 45, 46, 47] }]);
    expect(r.rel).toBeLessThan(1e-4);
    // And the scaling matters.
    const plain = referenceLogits(
      { ...m.ref, rope_scaling: null },
      m.weights,
      randomIds(8, 50, 5),
      undefined,
      [40, 41, 42, 43, 44, 45, 46, 47],
    );
    const scaled = referenceLogits(
      m.ref,
      m.weights,
      randomIds(8, 50, 5),
      undefined,
      [40, 41, 42, 43, 44, 45, 46, 47],
    );
    expect(Math.max(...plain.map((v, i) => Math.abs(v - (scaled[i] as number))))).toBeGreaterThan(1e-3);
  });

  test('Qwen2: q/k/v biases, tied embeddings, sliding window only from max_window_layers on', async () => {
    const m = tiny({
      architecture: 'Qwen2ForCausalLM',
      tie: true,
      layers: 2,
      extra: { use_sliding_window: true, sliding_window: 4, max_window_layers: 1 },
      windows: [null, 4],
      scale: 1.5,
    });
    const rows = [
      {
        ids: randomIds(10, 50, 6),
        segments: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
        positions: [0, 1, 2, 3, 4, 5, 0, 1, 2, 3],
      },
    ];
    const r = await compare(m, rows);
    expect(r.model.spec.sliding_window).toEqual([null, 4]);
    expect(r.model.lm_head).toBe(r.model.embed_tokens);
    expect(r.model.layers[0]?.q_bias).toBeDefined();
    expect(r.model.layers[0]?.o_bias).toBeUndefined();
    expect(r.rel).toBeLessThan(1e-4);
    expect(r.lossDiff).toBeLessThan(1e-4);
  });

  test('Llama attention_bias puts biases on q, k, v and o', async () => {
    const m = tiny({ attentionBias: true, scale: 1.5 });
    const r = await compare(m, [{ ids: randomIds(7, 50, 7) }]);
    expect(r.model.layers[1]?.o_bias?.shape).toEqual([16]);
    expect(r.rel).toBeLessThan(1e-4);
  });

  test('packed rows: documents attend only to themselves, padding forms its own segment', async () => {
    const m = tiny({ scale: 1.5 });
    const ids = randomIds(12, 50, 8);
    const segments = [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2];
    const positions = [0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1, 2];
    const r = await compare(m, [{ ids, segments, positions }]);
    expect(r.rel).toBeLessThan(1e-4);
    // Document 2 alone gives the same logits as inside the packed row.
    const alone = referenceLogits(m.ref, m.weights, ids.slice(4, 9));
    const packed = referenceLogits(m.ref, m.weights, ids, segments, positions).subarray(4 * 50, 9 * 50);
    expect(Math.max(...alone.map((v, i) => Math.abs(v - (packed[i] as number))))).toBeLessThan(1e-9);
  });

  test('precision bf16 keeps the weights as bf16 and computes with their values', async () => {
    const m = tiny({ scale: 1.5 });
    const model = await loadModel(m.dir, { precision: 'bf16' });
    expect(model.layers[0]?.q_proj.storage).toBe('bf16');
    expect(model.embed_tokens.storage).toBe('bf16');
    // Reference weights rounded to bf16 here (round to nearest even on the fp32 bits).
    const u32 = new Uint32Array(1);
    const f32 = new Float32Array(u32.buffer);
    const toBf16 = (v: number) => {
      f32[0] = v;
      const bits = u32[0] as number;
      u32[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
      return f32[0] as number;
    };
    const rounded: RefWeights = new Map([...m.weights].map(([k, v]) => [k, v.map(toBf16)]));
    const r = await compare(m, [{ ids: randomIds(8, 50, 9) }], { precision: 'bf16' }, rounded);
    expect(r.rel).toBeLessThan(1e-4);
  });

  test('nf4: linear weights quantized, embeddings and norms not; forward uses the dequantized values', async () => {
    const m = tiny({ hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, scale: 1.5 });
    const model = await loadModel(m.dir, { quantization: 'nf4', doubleQuant: true });
    const layer = model.layers[0]!;
    expect(layer.q_proj.storage).toBe('nf4');
    expect(layer.down_proj.storage).toBe('nf4');
    expect(layer.input_layernorm.storage).toBe('f32');
    expect(model.embed_tokens.storage).toBe('f32');
    expect(layer.q_proj.byteLength).toBeLessThan((64 * 64 * 4) / 6);
    const dequantized: RefWeights = new Map(m.weights);
    model.layers.forEach((l, i) => {
      for (const [name, t] of Object.entries(l)) {
        if (t.storage !== 'nf4') continue;
        const part = ['gate_proj', 'up_proj', 'down_proj'].includes(name) ? 'mlp' : 'self_attn';
        dequantized.set(`model.layers.${i}.${part}.${name}.weight`, Float64Array.from(t.toFloat32()));
      }
    });
    const r = await compare(m, [{ ids: randomIds(8, 50, 10) }], { quantization: 'nf4' }, dequantized);
    expect(r.rel).toBeLessThan(1e-4);
    // NF4 changes the maths measurably (so the comparison above used the quantized values).
    const exact = await compare(m, [{ ids: randomIds(8, 50, 10) }], { quantization: 'nf4' });
    expect(exact.rel).toBeGreaterThan(1e-3);
  });
});

describe('gradients of the layer-wise pieces', () => {
  test('d loss / d LoRA A, B through embed -> layers -> head matches float64 finite differences', async () => {
    const m = tiny({ architecture: 'Qwen2ForCausalLM', tie: true, scale: 1.5 });
    const model = await loadModel(m.dir);
    const ids = randomIds(8, 50, 11);
    const batch = makeBatch([
      { ids, segments: [0, 0, 0, 0, 0, 1, 1, 1], positions: [0, 1, 2, 3, 4, 0, 1, 2] },
    ]);
    const r = 2;
    const rng = new Rng(12);
    const rand = (n: number) => Float64Array.from({ length: n }, () => rng.next() - 0.5);
    // LoRA on layer 0 q_proj and layer 1 down_proj, scale 1.5.
    const targets = [
      { layer: 0, name: 'q_proj' as const, key: 'model.layers.0.self_attn.q_proj', inDim: 16, outDim: 16 },
      { layer: 1, name: 'down_proj' as const, key: 'model.layers.1.mlp.down_proj', inDim: 24, outDim: 16 },
    ];
    const params = targets.map((t) => ({ ...t, A: rand(r * t.inDim), B: rand(t.outDim * r) }));
    const vars = params.flatMap((p) => [
      tf.tensor2d(Float32Array.from(p.A), [r, p.inDim]),
      tf.tensor2d(Float32Array.from(p.B), [p.outDim, r]),
    ]);
    const lossOf = (...xs: tf.Tensor[]) => {
      const lora: ModelLora = [{}, {}];
      params.forEach((p, k) => {
        (lora[p.layer] as Record<string, unknown>)[p.name] = { A: xs[2 * k], B: xs[2 * k + 1], scale: 1.5 };
      });
      const ctx = createAttentionContext(model.spec, batch);
      let x = embedTokens(model, batch);
      for (let i = 0; i < model.layers.length; i++) {
        const w = layerTensors(model, i);
        x = decoderLayer(model.spec, i, x, w, ctx, lora[i]);
      }
      const out = headLossSum(model, x, batch.labels, { chunkSize: 3 }).lossSum;
      ctx.dispose();
      return out;
    };
    const grads = tf.tidy(() =>
      tf
        .grads(lossOf)(vars)
        .map((g) => g.dataSync().slice()),
    );
    tf.dispose(vars);

    const refLoss = (override?: { k: number; which: 'A' | 'B'; idx: number; delta: number }) => {
      const lora = new Map(
        params.map((p, k) => {
          const A = Float64Array.from(p.A);
          const B = Float64Array.from(p.B);
          if (override?.k === k) (override.which === 'A' ? A : B)[override.idx] += override.delta;
          return [p.key, { A, B, r, scale: 1.5 }] as const;
        }),
      );
      const logits = referenceLogits(
        m.ref,
        m.weights,
        ids,
        [0, 0, 0, 0, 0, 1, 1, 1],
        [0, 1, 2, 3, 4, 0, 1, 2],
        lora,
      );
      return referenceLossSum(logits, 50, Array.from(batch.labels)).sum;
    };
    const h = 1e-5;
    let checked = 0;
    params.forEach((p, k) => {
      for (const which of ['A', 'B'] as const) {
        const ours = grads[2 * k + (which === 'A' ? 0 : 1)] as Float32Array;
        const n = which === 'A' ? p.A.length : p.B.length;
        let maxRef = 0;
        let maxDiff = 0;
        for (let idx = 0; idx < n; idx += 3) {
          const fd = (refLoss({ k, which, idx, delta: h }) - refLoss({ k, which, idx, delta: -h })) / (2 * h);
          maxRef = Math.max(maxRef, Math.abs(fd));
          maxDiff = Math.max(maxDiff, Math.abs(fd - (ours[idx] as number)));
          checked++;
        }
        expect(maxRef).toBeGreaterThan(1e-4);
        expect(maxDiff / maxRef).toBeLessThan(1e-3);
      }
    });
    expect(checked).toBeGreaterThan(40);
  });

  test('a layer recomputed under tf.grads gives d/dx and d/dLoRA on wasm, leaving no tensors', async () => {
    const m = tiny({ architecture: 'MistralForCausalLM', extra: { sliding_window: 2 }, windows: [2, 2] });
    const model = await loadModel(m.dir);
    const batch = makeBatch([{ ids: randomIds(6, 50, 13) }]);
    const ctx = createAttentionContext(model.spec, batch);
    const x = embedTokens(model, batch);
    const A = tf.randomNormal([4, 16], 0, 0.1, 'float32', 1) as tf.Tensor2D;
    const B = tf.randomNormal([8, 4], 0, 0.1, 'float32', 2) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const w = layerTensors(model, 0);
    const dy = tf.onesLike(x);
    const g = tf.grads((xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor) =>
      decoderLayer(model.spec, 0, xi as tf.Tensor3D, w, ctx, {
        v_proj: { A: a as tf.Tensor2D, B: b as tf.Tensor2D, scale: 2, dropout: { rate: 0.1, seed: 7 } },
      }),
    )([x, A, B], dy);
    expect(g.map((t) => t.shape)).toEqual([x.shape, [4, 16], [8, 4]]);
    expect(g.every((t) => t.dataSync().every(Number.isFinite))).toBe(true);
    tf.dispose([...g, dy]);
    disposeLayerTensors(w);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, A, B]);
    ctx.dispose();
  });
});

describe('linear and dropout', () => {
  test('linear = x W^T + b + scale * x A^T B^T (W given transposed)', () => {
    const x = tf.tensor3d([1, 2, 3, -1, 0, 2], [1, 2, 3]);
    const W = tf.tensor2d([1, 0, 1, 0, 2, -1], [2, 3]);
    const b = tf.tensor1d([0.5, -0.5]);
    const A = tf.tensor2d([1, 1, 1], [1, 3]);
    const B = tf.tensor2d([1, 2], [2, 1]);
    const WT = tf.transpose(W) as tf.Tensor2D; // linear takes W^T [in, out]
    const y = linear(x, WT, b, { A, B, scale: 0.5 });
    // row 1: xW^T = [4, 1] + b = [4.5, 0.5]; xA^T = 6 -> [6, 12] * 0.5 = [3, 6] -> [7.5, 6.5]
    // row 2: xW^T = [1, -2] + b = [1.5, -2.5]; xA^T = 1 -> [0.5, 1] -> [2, -1.5]
    expect(y.shape).toEqual([1, 2, 2]);
    expect(Array.from(y.dataSync())).toEqual([7.5, 6.5, 2, -1.5]);
    expect(() => linear(x, W, b)).toThrow(
      /'w' passed to 'linear' must be \[3, out\] \(in_out\), got \[2,3\]/,
    );
    expect(() => linear(x, WT, b, undefined, 'out_in')).toThrow(/must be \[out, 3\] \(out_in\), got \[3,2\]/);
    tf.dispose([x, W, WT, b, A, B, y]);
  });

  test('linear with W as stored (out_in) = with W^T: values and gradients, with and without LoRA', () => {
    const x = tf.tensor2d([1, 2, 3, -1, 0, 2], [2, 3]);
    const W = tf.tensor2d([1, 0, 1, 0, 2, -1], [2, 3]);
    const WT = tf.transpose(W) as tf.Tensor2D;
    const A = tf.tensor2d([1, -1, 2], [1, 3]);
    const B = tf.tensor2d([3, 2], [2, 1]);
    const dy = tf.tensor2d([1, -2, 0.5, 3], [2, 2]);
    for (const withLora of [false, true]) {
      // d/dx (and d/dA, d/dB) of sum(linear(x) * dy)
      const run = (w: tf.Tensor2D, layout: 'in_out' | 'out_in') =>
        withLora
          ? tf.grads((xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor) =>
              tf.sum(
                tf.mul(
                  linear(xi, w, undefined, { A: a as tf.Tensor2D, B: b as tf.Tensor2D, scale: 0.5 }, layout),
                  dy,
                ),
              ),
            )([x, A, B])
          : tf.grads((xi: tf.Tensor) => tf.sum(tf.mul(linear(xi, w, undefined, undefined, layout), dy)))([x]);
      const [want, got] = [run(WT, 'in_out'), run(W, 'out_in')];
      // dx = dy W + 0.5 (dy B) A, by hand (exact in float32 for these values)
      const [dyv, wv, av, bv] = [
        [1, -2, 0.5, 3],
        [1, 0, 1, 0, 2, -1],
        [1, -1, 2],
        [3, 2],
      ];
      const dx: number[] = [];
      for (let n = 0; n < 2; n++) {
        const g = withLora ? 0.5 * (dyv[2 * n]! * bv[0]! + dyv[2 * n + 1]! * bv[1]!) : 0;
        for (let i = 0; i < 3; i++) dx.push(dyv[2 * n]! * wv[i]! + dyv[2 * n + 1]! * wv[3 + i]! + g * av[i]!);
      }
      expect(Array.from(want[0]!.dataSync())).toEqual(dx);
      for (let k = 0; k < want.length; k++)
        expect(Array.from(got[k]!.dataSync())).toEqual(Array.from(want[k]!.dataSync()));
      tf.dispose([...want, ...got]);
    }
    tf.dispose([x, W, WT, A, B, dy]);
  });

  test('dropout: same seed same mask, survivors scaled by 1 / (1 - rate)', () => {
    const x = tf.ones([200, 50]);
    const a = dropout(x, 0.25, 42).dataSync();
    const b = dropout(x, 0.25, 42).dataSync();
    const c = dropout(x, 0.25, 43).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const kept = a.filter((v) => v !== 0);
    expect(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
    expect(Math.abs(kept.length / a.length - 0.75)).toBeLessThan(0.02);
    x.dispose();
  });

  test('dropout draws the counter-based mask: fmix32(fmix32(lo + k1) ^ (k2 + hi)) >= rate * 2^32', () => {
    // An independent computation of the documented hash, in BigInt arithmetic.
    const M = 2n ** 32n;
    const fmix = (h: bigint) => {
      let x = h % M;
      x ^= x >> 16n;
      x = (x * 0x85ebca6bn) % M;
      x ^= x >> 13n;
      x = (x * 0xc2b2ae35n) % M;
      x ^= x >> 16n;
      return x;
    };
    for (const [shape, rate, seed, skip] of [
      [[37, 129], 0.1, 7, 0],
      [[3, 5, 11], 0.25, 123456789, 0],
      [[1001], 0.5, 0, 2 ** 32 - 500], // the low word wraps inside the mask
      [[64], 0.3, 4294967295, 3 * 2 ** 32 + 17],
    ] as const) {
      const n = tf.util.sizeFromShape([...shape]);
      const got = dropoutMask(n, rate, seed, skip);
      const s = BigInt(seed);
      const k1 = fmix(s ^ 0x9e3779b9n);
      const k2 = fmix(s + 0x7f4a7c15n);
      const threshold = BigInt(Math.floor(rate * 2 ** 32));
      const keep = Math.fround(1 / (1 - rate));
      for (let i = 0; i < n; i++) {
        const index = BigInt(skip) + BigInt(i);
        const h = fmix(fmix((index % M) + k1) ^ ((k2 + index / M) % M));
        expect(got[i], `element ${i} of seed ${seed}`).toBe(h >= threshold ? keep : 0);
      }
      const x = tf.tensor(
        Float32Array.from({ length: n }, (_, i) => i - 40),
        [...shape],
      );
      if (skip === 0) {
        const y = dropout(x, rate, seed).dataSync();
        expect(Array.from(y)).toEqual(
          Array.from(x.dataSync(), (v, i) => Math.fround(v * (got[i] as number))),
        );
      }
      x.dispose();
    }
  });

  test('dropout masks of different seeds and of neighbouring elements are independent', () => {
    const n = 200_000;
    const rate = 0.5;
    const a = dropoutMask(n, rate, 1);
    const b = dropoutMask(n, rate, 2);
    let agree = 0;
    let neighbours = 0;
    for (let i = 0; i < n; i++) {
      if ((a[i] === 0) === (b[i] === 0)) agree++;
      if (i > 0 && (a[i] === 0) === (a[i - 1] === 0)) neighbours++;
    }
    // 0.5 each for independent fair coins; 5 standard deviations is 0.0056 at this n
    expect(Math.abs(agree / n - 0.5)).toBeLessThan(0.0056);
    expect(Math.abs(neighbours / (n - 1) - 0.5)).toBeLessThan(0.0056);
  });
});
