/**
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101),
 * in the order torch.optim.AdamW applies it (torch/optim/adamw.py, single-tensor path):
 *
 *   p = p * (1 - lr * weight_decay)                  decoupled decay, before the Adam update
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g^2
 *   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * with t the 1-based number of updates. Only the LoRA weights are optimised; `m` and `v` are fp32
 * tf.Variables living as long as the run (design.md: the only long-lived tensors).
 */
import * as tf from '@tensorflow/tfjs';
import { MftError } from '../util/index.js';

export interface AdamWConfig {
  readonly adam_beta1: number;
  readonly adam_beta2: number;
  readonly adam_epsilon: number;
  readonly weight_decay: number;
}

/** Adam moments of every parameter, as saved in `optimizer.safetensors`. */
export interface AdamWState {
  /** Number of updates made so far (t of the last update). */
  step: number;
  /** First moment (`exp_avg`) per parameter key. */
  exp_avg: Map<string, Float32Array>;
  /** Second moment (`exp_avg_sq`) per parameter key. */
  exp_avg_sq: Map<string, Float32Array>;
}

/**
 * The update as one kernel (mft's own), which a backend may register (the wasm backend's native
 * kernels do): inputs `p`, `g`, `m`, `v`; outputs `[p, m, v]` after the update; attrs as below.
 * It computes the float32 operations of the tfjs ops in `adamwUpdate`, in their order.
 */
export const ADAMW_KERNEL = 'MftAdamW';

/** The kernel's attrs: the scalars of `adamwUpdate`, float64 (the kernel rounds them as tfjs does). */
export interface AdamWKernelAttrs {
  /** 1 - lr * weight_decay. */
  decay: number;
  beta1: number;
  beta2: number;
  /** sqrt(1 - beta2^t). */
  bc2Sqrt: number;
  eps: number;
  /** lr / (1 - beta1^t). */
  stepSize: number;
}

/**
 * One AdamW update of one parameter, as a pure function of tensors (returns new tensors).
 * @param p parameter, any shape
 * @param g its gradient, same shape
 * @param m first moment, same shape; @param v second moment, same shape
 * @param t 1-based number of this update (for the bias corrections)
 * @param lr learning rate of this step
 * @example const next = adamwUpdate(p, g, m, v, 1, 1e-3, cfg); // {p, m, v}
 */
export function adamwUpdate(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  t: number,
  lr: number,
  cfg: AdamWConfig,
): { p: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  return tf.tidy(() => {
    const { adam_beta1: b1, adam_beta2: b2, adam_epsilon: eps, weight_decay: wd } = cfg;
    // bias corrections in float64 (JS numbers), then used as fp32 scalars
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const fused = [p, g, m, v].every((x) => x.dtype === 'float32' && tf.util.arraysEqual(x.shape, p.shape));
    if (fused && tf.getKernel(ADAMW_KERNEL, tf.getBackend()) !== undefined) {
      const attrs: AdamWKernelAttrs = { decay: 1 - lr * wd, beta1: b1, beta2: b2, bc2Sqrt, eps, stepSize };
      const out = tf.engine().runKernel(ADAMW_KERNEL, { p, g, m, v }, attrs as unknown as tf.NamedAttrMap);
      const [p1, m1, v1] = out as tf.Tensor[];
      return { p: p1!, m: m1!, v: v1! };
    }
    const decayed = wd !== 0 ? p.mul(1 - lr * wd) : p.clone();
    const m1 = m.mul(b1).add(g.mul(1 - b1));
    const v1 = v.mul(b2).add(g.square().mul(1 - b2));
    const denom = v1.sqrt().div(bc2Sqrt).add(eps);
    const p1 = decayed.sub(m1.div(denom).mul(stepSize));
    return { p: p1, m: m1, v: v1 };
  });
}

/** A non-trainable fp32 variable of zeros (the initial tensor is released once the variable holds it). */
function zerosVariable(shape: number[]): tf.Variable {
  const z = tf.zeros(shape);
  const v = tf.variable(z, false);
  z.dispose();
  return v;
}

/** AdamW over a fixed set of named tf.Variables (the LoRA weights). */
export class AdamW {
  /** Number of updates made so far. */
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    private readonly cfg: AdamWConfig,
  ) {
    for (const [key, p] of params) {
      this.m.set(key, zerosVariable(p.shape));
      this.v.set(key, zerosVariable(p.shape));
    }
  }

  /**
   * Apply one update with learning rate `lr`; `grads` holds one gradient per parameter key (the
   * caller keeps ownership of them).
   */
  update(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    const t = this.step + 1;
    for (const [key, p] of this.params) {
      const g = grads.get(key);
      if (!g) throw new Error(`Argument 'grads' passed to 'AdamW.update' has no gradient for ${key}`);
      const m = this.m.get(key)!;
      const v = this.v.get(key)!;
      const next = adamwUpdate(p, g, m, v, t, lr, this.cfg);
      p.assign(next.p);
      m.assign(next.m);
      v.assign(next.v);
      tf.dispose([next.p, next.m, next.v]);
    }
    this.step = t;
  }

  /** A copy of the moments and step, for a checkpoint. */
  async state(): Promise<AdamWState> {
    const exp_avg = new Map<string, Float32Array>();
    const exp_avg_sq = new Map<string, Float32Array>();
    for (const key of this.params.keys()) {
      exp_avg.set(key, (await this.m.get(key)!.data()) as Float32Array);
      exp_avg_sq.set(key, (await this.v.get(key)!.data()) as Float32Array);
    }
    return { step: this.step, exp_avg, exp_avg_sq };
  }

  /** Continue from a saved state (same parameter keys and shapes, else an MftError naming the key). */
  load(state: AdamWState, where: string): void {
    for (const [key, p] of this.params) {
      const m = state.exp_avg.get(key);
      const v = state.exp_avg_sq.get(key);
      const n = p.size;
      if (!m || !v || m.length !== n || v.length !== n) {
        throw new MftError({
          where,
          message: `optimizer state for ${key} is missing or has the wrong size (want ${n} values)`,
          fix: 'resume from a checkpoint of the same run (same LoRA targets and rank)',
        });
      }
      tf.tidy(() => {
        this.m.get(key)!.assign(tf.tensor(m, p.shape));
        this.v.get(key)!.assign(tf.tensor(v, p.shape));
      });
    }
    this.step = state.step;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
