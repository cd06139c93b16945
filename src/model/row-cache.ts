/**
 * Key/value caches for batched decoding of independent sequences (continuous batching): each
 * sequence has its own `RowCache` of any length, and one decode step runs every sequence's next
 * token as one batch `[B, 1]`. A layer's keys of row b are its cache, then the new key, then zeros
 * up to the longest row; the mask hides the zeros (and, with a sliding window, keys outside it), so
 * each row attends to exactly what it would alone. Caches keep every position (the window is in
 * the mask), so a row can leave or join any step.
 */
import * as tf from '@tensorflow/tfjs';
import { type AttentionContext, MASKED } from './attention.js';
import { ropeTables } from './rope.js';
import type { ModelSpec } from './spec.js';

/** The keys/values of one sequence, per layer `[1, kv_heads, length, head_dim]`. */
export class RowCache {
  private readonly k: (tf.Tensor4D | null)[];
  private readonly v: (tf.Tensor4D | null)[];
  /** Positions cached so far (the next token's position). */
  length = 0;

  constructor(spec: ModelSpec) {
    this.k = spec.sliding_window.map(() => null);
    this.v = spec.sliding_window.map(() => null);
  }

  /** Append layer i's new keys/values `[1, KV, T, D]`; returns the whole cache of that layer. */
  append(i: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    const oldK = this.k[i] ?? null;
    const oldV = this.v[i] ?? null;
    // tf.keep: the cache outlives the tidy of the layer that computed it.
    const fullK = tf.keep(oldK ? tf.concat([oldK, k], 2) : tf.clone(k));
    const fullV = tf.keep(oldV ? tf.concat([oldV, v], 2) : tf.clone(v));
    if (oldK) oldK.dispose();
    if (oldV) oldV.dispose();
    this.k[i] = fullK;
    this.v[i] = fullV;
    return { k: fullK, v: fullV };
  }

  /** Free the cached tensors. */
  dispose(): void {
    tf.dispose([...this.k, ...this.v].filter((t): t is tf.Tensor4D => t !== null));
    this.k.fill(null);
    this.v.fill(null);
  }
}

/** Additive mask row of a query at position p over keys at `keys` (-1 = padding). */
function maskRow(out: Float32Array, at: number, p: number, keys: number[], window: number | null): void {
  keys.forEach((j, s) => {
    if (j >= 0 && j <= p && (window === null || p - j < window)) out[at + s] = 0;
  });
}

/**
 * The context of feeding `count` new tokens of one sequence (its prompt: prefill), batch size 1.
 * Keys/values are appended to `row`; `row.length` grows by `count` when the context is disposed.
 */
export function prefillContext(spec: ModelSpec, row: RowCache, count: number): AttentionContext {
  const start = row.length;
  const positions = Array.from({ length: count }, (_, t) => start + t);
  const keys = Array.from({ length: start + count }, (_, j) => j);
  const { cos, sin } = ropeTables(spec, Int32Array.from(positions), 1, count);
  const masks = new Map<number | null, tf.Tensor4D>();
  for (const W of new Set(spec.sliding_window)) {
    const m = new Float32Array(count * keys.length).fill(MASKED);
    positions.forEach((p, t) => {
      maskRow(m, t * keys.length, p, keys, W);
    });
    masks.set(W, tf.tensor4d(m, [1, 1, count, keys.length]));
  }
  return {
    batchSize: 1,
    seqLen: count,
    cos,
    sin,
    mask: (i) => masks.get(spec.sliding_window[i] ?? null) as tf.Tensor4D,
    keysValues: (i, k, v) => row.append(i, k, v),
    dispose: () => {
      tf.dispose([cos, sin, ...masks.values()]);
      row.length = start + count;
    },
  };
}

/**
 * The context of one decode step of `rows` (one new token each, batch row b = rows[b]). Each row's
 * cache grows by one when the context is disposed.
 */
export function decodeContext(spec: ModelSpec, rows: readonly RowCache[]): AttentionContext {
  const B = rows.length;
  const lengths = rows.map((r) => r.length);
  const S = Math.max(...lengths) + 1; // keys of the longest row, its new one included
  const { cos, sin } = ropeTables(spec, Int32Array.from(lengths), B, 1);
  const masks = new Map<number | null, tf.Tensor4D>();
  for (const W of new Set(spec.sliding_window)) {
    const m = new Float32Array(B * S).fill(MASKED);
    lengths.forEach((L, b) => {
      const keys = Array.from({ length: S }, (_, j) => (j <= L ? j : -1));
      maskRow(m, b * S, L, keys, W);
    });
    masks.set(W, tf.tensor4d(m, [B, 1, 1, S]));
  }
  return {
    batchSize: B,
    seqLen: 1,
    cos,
    sin,
    mask: (i) => masks.get(spec.sliding_window[i] ?? null) as tf.Tensor4D,
    keysValues: (i, k, v) => {
      const ks: tf.Tensor4D[] = [];
      const vs: tf.Tensor4D[] = [];
      rows.forEach((row, b) => {
        const one = (t: tf.Tensor4D) => tf.slice(t, [b, 0, 0, 0], [1, -1, -1, -1]);
        const full = row.append(i, one(k), one(v)); // [1, KV, L + 1, D]
        const pad = S - full.k.shape[2];
        const padded = (t: tf.Tensor4D) =>
          pad === 0
            ? t
            : tf.pad(t, [
                [0, 0],
                [0, 0],
                [0, pad],
                [0, 0],
              ]);
        ks.push(padded(full.k));
        vs.push(padded(full.v));
      });
      return {
        k: B === 1 ? (ks[0] as tf.Tensor4D) : tf.concat(ks, 0),
        v: B === 1 ? (vs[0] as tf.Tensor4D) : tf.concat(vs, 0),
      };
    },
    dispose: () => {
      tf.dispose([cos, sin, ...masks.values()]);
      for (const r of rows) r.length += 1;
    },
  };
}
