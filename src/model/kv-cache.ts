/**
 * The key/value cache of generation: each layer keeps the rotated keys and the values of every
 * position it may still attend to, so a new token costs one row of attention instead of a whole
 * forward pass. A layer with a sliding window W keeps only its last W - 1 positions (the next query
 * sees W keys: those and itself); the mask is built from absolute positions, so the cache and the
 * window agree at any length.
 */
import * as tf from '@tensorflow/tfjs';
import { type AttentionContext, MASKED } from './attention.js';
import { ropeTables } from './rope.js';
import type { ModelSpec } from './spec.js';

interface LayerCache {
  k: tf.Tensor4D | null; // [1, kv_heads, S, head_dim]
  v: tf.Tensor4D | null; // [1, kv_heads, S, head_dim]
  positions: number[]; // absolute position of each cached key
}

/** Per-layer cache of one sequence (batch size 1). */
export class KvCache {
  private readonly layers: LayerCache[];

  constructor(private readonly spec: ModelSpec) {
    this.layers = spec.sliding_window.map(() => ({ k: null, v: null, positions: [] }));
  }

  /** Positions seen so far. */
  get length(): number {
    return this.nextPosition;
  }

  private nextPosition = 0;

  /**
   * The attention context of the next `count` tokens (positions continue from the cache). Its
   * `keysValues` appends the new keys/values to the cache; `dispose()` it after the step.
   */
  step(count: number): AttentionContext {
    const start = this.nextPosition;
    const newPositions = Array.from({ length: count }, (_, t) => start + t);
    this.nextPosition += count;
    const { cos, sin } = ropeTables(this.spec, Int32Array.from(newPositions), 1, count);
    // Layers with the same window hold the same positions, so they share a mask.
    const masks = new Map<number | null, tf.Tensor4D>();
    for (const [i, W] of this.spec.sliding_window.entries()) {
      if (masks.has(W)) continue;
      const keys = [...(this.layers[i] as LayerCache).positions, ...newPositions];
      masks.set(W, tf.tensor4d(stepMask(newPositions, keys, W), [1, 1, count, keys.length]));
    }
    return {
      batchSize: 1,
      seqLen: count,
      cos,
      sin,
      mask: (i) => masks.get(this.spec.sliding_window[i] ?? null) as tf.Tensor4D,
      keysValues: (i, k, v) => this.append(i, k, v, newPositions),
      dispose: () => {
        tf.dispose([cos, sin, ...masks.values()]);
      },
    };
  }

  /** Append this step's keys/values to layer i and return everything the step attends to. */
  private append(
    i: number,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    newPositions: number[],
  ): { k: tf.Tensor4D; v: tf.Tensor4D } {
    const layer = this.layers[i] as LayerCache;
    const fullK = layer.k ? tf.concat([layer.k, k], 2) : k; // [1, KV, S + T, D]
    const fullV = layer.v ? tf.concat([layer.v, v], 2) : v; // [1, KV, S + T, D]
    tf.dispose([layer.k, layer.v].filter((t): t is tf.Tensor4D => t !== null));
    const positions = [...layer.positions, ...newPositions];
    const W = this.spec.sliding_window[i] ?? null;
    const keep = W === null ? positions.length : Math.min(positions.length, W - 1);
    const drop = positions.length - keep;
    // tf.keep: the cache outlives the tidy of the layer that computed it.
    const trim = (t: tf.Tensor4D) => (drop === 0 ? t : tf.slice(t, [0, 0, drop, 0], [-1, -1, keep, -1]));
    layer.k = keep === 0 ? null : tf.keep(trim(fullK));
    layer.v = keep === 0 ? null : tf.keep(trim(fullV));
    layer.positions = positions.slice(drop);
    return { k: fullK, v: fullV };
  }

  /** Free every cached tensor. */
  dispose(): void {
    for (const l of this.layers) {
      tf.dispose([l.k, l.v].filter((t): t is tf.Tensor4D => t !== null));
      l.k = null;
      l.v = null;
      l.positions = [];
    }
  }
}

/** Additive mask `[T, S]`: query at position p sees a key at position j when p - W < j <= p. */
function stepMask(queries: number[], keys: number[], window: number | null): Float32Array {
  const mask = new Float32Array(queries.length * keys.length).fill(MASKED);
  queries.forEach((p, t) => {
    keys.forEach((j, s) => {
      if (j <= p && (window === null || p - j < window)) mask[t * keys.length + s] = 0;
    });
  });
  return mask;
}
