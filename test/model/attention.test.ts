/**
 * Masks and attention against definitions written here: query i sees key j iff j <= i, same
 * segment, and i - W < j with a window W (reference-decoder.ts `refVisible`); attention with GQA
 * against a float64 loop where query head h reads key/value head floor(h / n_rep) (HF repeat_kv).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import type { Batch } from '../../src/model/batch.js';
import {
  attention,
  batchMask,
  createAttentionContext,
  MASKED,
  parseModelSpec,
} from '../../src/model/index.js';
import { Rng } from '../../src/util/index.js';
import { refVisible } from './reference-decoder.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('batchMask', () => {
  test.each([null, 1, 2, 5])('causal AND same segment AND window %s, every row', (W) => {
    const B = 2;
    const T = 9;
    const segments = [0, 0, 0, 1, 1, 1, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    const mask = batchMask(Int32Array.from(segments), B, T, W);
    for (let b = 0; b < B; b++) {
      const seg = segments.slice(b * T, (b + 1) * T);
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          expect(mask[(b * T + i) * T + j]).toBe(refVisible(i, j, seg, W) ? 0 : MASKED);
        }
        expect(mask[(b * T + i) * T + i]).toBe(0); // no row is empty: a token always sees itself
      }
    }
  });
});

describe('attention', () => {
  test.each([
    [4, 4],
    [4, 2],
    [6, 2],
  ])('%i query heads over %i key/value heads matches a float64 loop', (H, KV) => {
    const B = 2;
    const T = 5;
    const D = 4;
    const rng = new Rng(H * 10 + KV);
    const rand = (n: number) => Float32Array.from({ length: n }, () => 2 * rng.next() - 1);
    const q = rand(B * H * T * D);
    const k = rand(B * KV * T * D);
    const v = rand(B * KV * T * D);
    const segments = Int32Array.from([0, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
    const W = 2;
    const mask = batchMask(segments, B, T, W);
    const out = tf.tidy(() =>
      attention(
        tf.tensor4d(q, [B, H, T, D]),
        tf.tensor4d(k, [B, KV, T, D]),
        tf.tensor4d(v, [B, KV, T, D]),
        tf.tensor4d(mask, [B, 1, T, T]),
      ).dataSync(),
    );
    let maxErr = 0;
    for (let b = 0; b < B; b++) {
      const seg = Array.from(segments.subarray(b * T, (b + 1) * T));
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        for (let i = 0; i < T; i++) {
          const at = (arr: Float32Array, heads: number, hh: number, t: number, d: number) =>
            arr[((b * heads + hh) * T + t) * D + d] as number;
          const scores = Array.from({ length: T }, (_, j) => {
            if (!refVisible(i, j, seg, W)) return Number.NEGATIVE_INFINITY;
            let s = 0;
            for (let d = 0; d < D; d++) s += at(q, H, h, i, d) * at(k, KV, g, j, d);
            return s / Math.sqrt(D);
          });
          const m = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - m));
          const z = e.reduce((a, c) => a + c, 0);
          for (let d = 0; d < D; d++) {
            let o = 0;
            for (let j = 0; j < T; j++) o += ((e[j] as number) / z) * at(v, KV, g, j, d);
            maxErr = Math.max(maxErr, Math.abs(o - (out[((b * H + h) * T + i) * D + d] as number)));
          }
        }
      }
    }
    expect(maxErr).toBeLessThan(1e-6);
  });
  test('large products (run as 2-D matMuls) match batched matMul, value and gradients', () => {
    // n_rep * T * S * D = 2 * 256 * 256 * 64 = 2^23: the per-(batch, kv head) 2-D path
    const [B, H, KV, T, D] = [2, 4, 2, 256, 64];
    const rng = new Rng(7);
    const rand = (shape: [number, number, number, number]) =>
      tf.tensor4d(
        Float32Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => 2 * rng.next() - 1),
        shape,
      );
    const batched = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D) => {
      const nRep = H / KV;
      const s = tf.mul(tf.matMul(tf.reshape(q, [B, KV, nRep * T, D]), k, false, true), 1 / Math.sqrt(D));
      const p = tf.softmax(tf.add(tf.reshape(s, [B, H, T, T]), mask));
      return tf.reshape(tf.matMul(tf.reshape(p, [B, KV, nRep * T, T]), v), [B, H, T, D]);
    };
    const segments = new Int32Array(B * T).map((_, i) => (i % T < 100 ? 0 : 1));
    const maxDiff = tf.tidy(() => {
      const [q, k, v, dy] = [
        rand([B, H, T, D]),
        rand([B, KV, T, D]),
        rand([B, KV, T, D]),
        rand([B, H, T, D]),
      ];
      const mask = tf.tensor4d(batchMask(segments, B, T, null), [B, 1, T, T]);
      const f = (fn: typeof batched) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        fn(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, mask);
      const got = [attention(q, k, v, mask), ...tf.grads(f(attention))([q, k, v], dy)];
      const want = [batched(q, k, v, mask), ...tf.grads(f(batched))([q, k, v], dy)];
      return got.map((g, i) => tf.max(tf.abs(tf.sub(g, want[i] as tf.Tensor))).dataSync()[0] as number);
    });
    for (const d of maxDiff) expect(d).toBeLessThan(1e-4);
  });
});

describe('createAttentionContext', () => {
  test('one mask per distinct window; each layer gets its own; dispose frees everything', () => {
    const spec = parseModelSpec({
      architectures: ['Qwen2ForCausalLM'],
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 8,
      num_hidden_layers: 3,
      num_attention_heads: 2,
      use_sliding_window: true,
      sliding_window: 2,
      max_window_layers: 1,
    });
    const T = 4;
    const batch: Batch = {
      batchSize: 1,
      seqLen: T,
      inputIds: new Int32Array(T),
      labels: new Int32Array(T),
      segmentIds: Int32Array.from([0, 0, 0, 1]),
      positionIds: Int32Array.from([0, 1, 2, 0]),
    };
    const before = tf.memory().numTensors;
    const ctx = createAttentionContext(spec, batch);
    expect(tf.memory().numTensors - before).toBe(4); // cos, sin, full mask, window-2 mask
    expect(ctx.cos.shape).toEqual([1, 1, T, 4]);
    expect(Array.from(ctx.mask(0).dataSync())).toEqual(Array.from(batchMask(batch.segmentIds, 1, T, null)));
    expect(Array.from(ctx.mask(2).dataSync())).toEqual(Array.from(batchMask(batch.segmentIds, 1, T, 2)));
    expect(ctx.mask(1)).toBe(ctx.mask(2));
    // the packed second document restarts at position 0: same cos row as the first token
    const cos = ctx.cos.dataSync();
    expect(Array.from(cos.slice(3 * 4, 4 * 4))).toEqual(Array.from(cos.slice(0, 4)));
    ctx.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
