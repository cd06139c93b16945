import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend, useNativeKernels, useStockKernels } from '../../src/backend/index.js';
import { ADAMW_KERNEL, AdamW, type AdamWConfig } from '../../src/train/adamw.js';
import { Rng } from '../../src/util/index.js';
import { HAS_BINDING } from '../helpers/native-binding.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const cfg: AdamWConfig = { adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, weight_decay: 0.1 };

/** torch.optim.AdamW written out in float64, element by element (the reference). */
function referenceAdamW(
  p0: Float64Array,
  gradsPerStep: Float64Array[],
  lrs: number[],
  c: AdamWConfig,
): Float64Array {
  const p = Float64Array.from(p0);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  gradsPerStep.forEach((g, s) => {
    const t = s + 1;
    const lr = lrs[s]!;
    for (let i = 0; i < p.length; i++) {
      p[i]! *= 1 - lr * c.weight_decay;
      m[i] = c.adam_beta1 * m[i]! + (1 - c.adam_beta1) * g[i]!;
      v[i] = c.adam_beta2 * v[i]! + (1 - c.adam_beta2) * g[i]! * g[i]!;
      const mHat = m[i]! / (1 - c.adam_beta1 ** t);
      const vHat = v[i]! / (1 - c.adam_beta2 ** t);
      p[i]! -= (lr * mHat) / (Math.sqrt(vHat) + c.adam_epsilon);
    }
  });
  return p;
}

function randomArray(rng: Rng, n: number, scale: number): Float64Array {
  return Float64Array.from({ length: n }, () => (2 * rng.next() - 1) * scale);
}

describe('AdamW', () => {
  test.skipIf(!HAS_BINDING)(
    'the fused kernel (wasm, on the binding) equals the tfjs ops bit for bit, with and without decay',
    () => {
      const run = (weightDecay: number) => {
        const rng = new Rng(11);
        const n = 70_000; // cut across threads
        const p = tf.variable(tf.tensor1d(Float32Array.from(randomArray(rng, n, 0.5))));
        const opt = new AdamW(new Map([['p', p]]), { ...cfg, weight_decay: weightDecay });
        for (const lr of [1e-3, 2e-2, 5e-4]) {
          const g = tf.tensor1d(Float32Array.from(randomArray(rng, n, 3)));
          opt.update(new Map([['p', g]]), lr);
          g.dispose();
        }
        const out = p.dataSync().slice();
        opt.dispose();
        p.dispose();
        return out;
      };
      for (const wd of [0.1, 0]) {
        useNativeKernels();
        expect(tf.getKernel(ADAMW_KERNEL, 'wasm')).toBeDefined();
        const fused = run(wd);
        useStockKernels();
        const ops = run(wd);
        useNativeKernels();
        expect(fused).toEqual(ops);
      }
    },
  );

  test('matches a float64 torch-order reference over several steps with weight decay', () => {
    const rng = new Rng(7);
    const shapes: Record<string, [number, number]> = { A: [4, 6], B: [6, 4] };
    const p0: Record<string, Float64Array> = {};
    const vars = new Map<string, tf.Variable>();
    for (const [k, s] of Object.entries(shapes)) {
      p0[k] = randomArray(rng, s[0] * s[1], 0.5);
      vars.set(k, tf.variable(tf.tensor2d(Float32Array.from(p0[k]!), s)));
    }
    const steps = 6;
    const lrs = [1e-3, 5e-3, 1e-2, 1e-2, 3e-3, 1e-4];
    const grads: Record<string, Float64Array[]> = { A: [], B: [] };
    for (let s = 0; s < steps; s++) {
      // float32-representable gradients so both sides see the same inputs
      for (const k of Object.keys(shapes))
        grads[k]!.push(Float64Array.from(randomArray(rng, p0[k]!.length, 2), Math.fround));
    }
    const opt = new AdamW(vars, cfg);
    const before = tf.memory().numTensors;
    for (let s = 0; s < steps; s++) {
      const g = new Map<string, tf.Tensor>();
      for (const [k, sh] of Object.entries(shapes))
        g.set(k, tf.tensor2d(Float32Array.from(grads[k]![s]!), sh));
      opt.update(g, lrs[s]!);
      tf.dispose([...g.values()]);
      expect(tf.memory().numTensors).toBe(before);
    }
    expect(opt.step).toBe(steps);
    for (const k of Object.keys(shapes)) {
      // the reference starts from the same fp32 values
      const ref = referenceAdamW(Float64Array.from(Float32Array.from(p0[k]!)), grads[k]!, lrs, cfg);
      const got = vars.get(k)!.dataSync();
      let maxErr = 0;
      for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i]! - ref[i]!));
      expect(maxErr).toBeLessThan(2e-6);
      // and the weights did move (the test can fail)
      expect(Math.abs(got[0]! - p0[k]![0]!)).toBeGreaterThan(1e-4);
    }
    opt.dispose();
    for (const v of vars.values()) v.dispose();
  });

  test('the first update moves each weight by about lr in the direction against the gradient', () => {
    // m_hat / sqrt(v_hat) = g / |g| on step 1
    const p = tf.variable(tf.tensor1d([1, 1, 1]));
    const opt = new AdamW(new Map([['p', p]]), { ...cfg, weight_decay: 0 });
    const g = tf.tensor1d([0.5, -3, 1e-3]);
    opt.update(new Map([['p', g]]), 0.01);
    const got = Array.from(p.dataSync());
    expect(got[0]).toBeCloseTo(0.99, 6);
    expect(got[1]).toBeCloseTo(1.01, 6);
    expect(got[2]).toBeCloseTo(0.99, 4);
    tf.dispose([g, p]);
    opt.dispose();
  });

  test('state() and load() continue the same sequence', async () => {
    const mk = () => tf.variable(tf.tensor1d([0.3, -0.2]));
    const a = mk();
    const b = mk();
    const optA = new AdamW(new Map([['w', a]]), cfg);
    const grads = [
      [0.1, 0.2],
      [-0.3, 0.05],
      [0.2, -0.1],
    ];
    const stepWith = (opt: AdamW, g: number[]) => {
      const t = tf.tensor1d(g);
      opt.update(new Map([['w', t]]), 1e-2);
      t.dispose();
    };
    for (const g of grads) stepWith(optA, g);
    // b: two steps, save, new optimizer, load, third step
    const optB1 = new AdamW(new Map([['w', b]]), cfg);
    stepWith(optB1, grads[0]!);
    stepWith(optB1, grads[1]!);
    const saved = await optB1.state();
    optB1.dispose();
    const optB2 = new AdamW(new Map([['w', b]]), cfg);
    optB2.load(saved, 'test');
    expect(optB2.step).toBe(2);
    stepWith(optB2, grads[2]!);
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(() => optB2.load({ ...saved, exp_avg: new Map() }, 'ckpt/optimizer.safetensors')).toThrow(
      /ckpt\/optimizer.safetensors: optimizer state for w is missing/,
    );
    for (const t of [a, b]) t.dispose();
    optA.dispose();
    optB2.dispose();
  });
});
