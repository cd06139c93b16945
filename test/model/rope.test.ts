/**
 * RoPE against float64 computations written here: HF rotate_half pairs (i, i + D/2), the
 * frequencies of transformers' rope init functions (reference-decoder.ts `refFrequency`), and the
 * property that makes it a position encoding: q·k depends only on the distance of the positions.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { applyRope, ropeInvFreq, ropeTables, rotateHalf } from '../../src/model/index.js';
import type { RopeScaling } from '../../src/model/spec.js';
import { Rng } from '../../src/util/index.js';
import { type RefConfig, refFrequency } from './reference-decoder.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function refCfg(head_dim: number, rope_theta: number, rope_scaling: RopeScaling | null): RefConfig {
  return {
    vocab_size: 1,
    hidden_size: head_dim,
    intermediate_size: 1,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    head_dim,
    rms_norm_eps: 1e-5,
    rope_theta,
    rope_scaling,
    tie_word_embeddings: false,
    windows: [null],
  };
}

describe('ropeInvFreq', () => {
  test('plain: 1 / theta^(2i / D)', () => {
    const f = ropeInvFreq({ head_dim: 8, rope_theta: 10000, rope_scaling: null });
    [1, 0.1, 0.01, 0.001].forEach((v, i) => {
      expect(f[i]).toBeCloseTo(v, 15);
    });
  });

  test('linear divides every frequency by factor', () => {
    const f = ropeInvFreq({
      head_dim: 8,
      rope_theta: 10000,
      rope_scaling: { rope_type: 'linear', factor: 4 },
    });
    expect(f[1]).toBeCloseTo(0.025, 14);
  });

  test('llama3 (Llama 3.1 settings): high frequencies kept, low divided by 8, the band between smoothed', () => {
    const scaling: RopeScaling = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    const spec = { head_dim: 128, rope_theta: 500000, rope_scaling: scaling };
    const ours = ropeInvFreq(spec);
    const plain = ropeInvFreq({ ...spec, rope_scaling: null });
    const ref = refCfg(128, 500000, scaling);
    let kept = 0;
    let divided = 0;
    let smoothed = 0;
    ours.forEach((f, i) => {
      expect(f).toBeCloseTo(refFrequency(ref, i), 15);
      const p = plain[i] as number;
      if (f === p) kept++;
      else if (Math.abs(f - p / 8) < 1e-18) divided++;
      else {
        smoothed++;
        expect(f).toBeLessThan(p);
        expect(f).toBeGreaterThan(p / 8);
      }
    });
    expect(kept).toBeGreaterThan(0);
    expect(divided).toBeGreaterThan(0);
    expect(smoothed).toBeGreaterThan(0);
  });
});

describe('applyRope', () => {
  test('rotate_half([x1, x2]) = [-x2, x1]', () => {
    const x = tf.tensor4d([1, 2, 3, 4], [1, 1, 1, 4]);
    expect(Array.from(rotateHalf(x).dataSync())).toEqual([-3, -4, 1, 2]);
    x.dispose();
  });

  test('rotate_half is exact on many rows, and its gradient is the transpose: g -> [g2, -g1]', () => {
    const [B, H, T, D] = [2, 3, 5, 6];
    const rng = new Rng(3);
    const xs = Float32Array.from({ length: B * H * T * D }, () => rng.next() - 0.5);
    const ws = Float32Array.from({ length: xs.length }, () => rng.next() - 0.5);
    const x = tf.tensor4d(xs, [B, H, T, D]);
    const w = tf.tensor4d(ws, [B, H, T, D]);
    const y = rotateHalf(x).dataSync();
    const g = tf
      .grad((t: tf.Tensor) => tf.sum(tf.mul(rotateHalf(t as tf.Tensor4D), w)))(x)
      .dataSync();
    const half = D / 2;
    for (let row = 0; row < B * H * T; row++)
      for (let i = 0; i < half; i++) {
        const o = row * D;
        expect(y[o + i]).toBe(-(xs[o + half + i] as number));
        expect(y[o + half + i]).toBe(xs[o + i]);
        expect(g[o + i]).toBe(ws[o + half + i]);
        expect(g[o + half + i]).toBe(-(ws[o + i] as number));
      }
    tf.dispose([x, w]);
  });

  test('rotates each (i, i + D/2) pair by position * freq_i, positions per batch row', () => {
    const D = 8;
    const spec = { head_dim: D, rope_theta: 100, rope_scaling: null };
    const B = 2;
    const T = 3;
    const heads = 2;
    const positions = Int32Array.from([0, 1, 2, 7, 0, 30]);
    const rng = new Rng(1);
    const x = Float32Array.from({ length: B * heads * T * D }, () => rng.next() - 0.5);
    const { cos, sin } = ropeTables(spec, positions, B, T);
    const y = applyRope(tf.tensor4d(x, [B, heads, T, D]), cos, sin).dataSync();
    let maxErr = 0;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < heads; h++) {
        for (let t = 0; t < T; t++) {
          const o = ((b * heads + h) * T + t) * D;
          for (let i = 0; i < D / 2; i++) {
            const angle = (positions[b * T + t] as number) * 100 ** (-(2 * i) / D);
            const x1 = x[o + i] as number;
            const x2 = x[o + i + D / 2] as number;
            maxErr = Math.max(
              maxErr,
              Math.abs((y[o + i] as number) - (x1 * Math.cos(angle) - x2 * Math.sin(angle))),
              Math.abs((y[o + i + D / 2] as number) - (x2 * Math.cos(angle) + x1 * Math.sin(angle))),
            );
          }
        }
      }
    }
    expect(maxErr).toBeLessThan(1e-6);
    tf.dispose([cos, sin]);
  });

  test('q·k after RoPE depends only on the distance between positions', () => {
    const D = 16;
    const spec = { head_dim: D, rope_theta: 10000, rope_scaling: null };
    const rng = new Rng(2);
    const q = Array.from({ length: D }, () => rng.next() - 0.5);
    const k = Array.from({ length: D }, () => rng.next() - 0.5);
    const dot = (pq: number, pk: number) =>
      tf.tidy(() => {
        const { cos, sin } = ropeTables(spec, Int32Array.from([pq, pk]), 1, 2);
        const x = tf.tensor4d([...q, ...k], [1, 1, 2, D]);
        const r = applyRope(x, cos, sin).dataSync();
        let s = 0;
        for (let d = 0; d < D; d++) s += (r[d] as number) * (r[D + d] as number);
        return s;
      });
    expect(dot(10, 7)).toBeCloseTo(dot(3, 0), 5);
    expect(dot(10, 7)).not.toBeCloseTo(dot(10, 6), 3);
  });
});
