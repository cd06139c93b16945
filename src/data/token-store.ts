/**
 * All tokenized samples of a dataset in flat typed arrays: sample s is
 * `ids[offsets[s] .. offsets[s+1])` with its labels at the same positions. Eight bytes per token
 * and no per-sample objects, so millions of samples stay compact and the cache file is these
 * arrays written out as they are.
 */
import type { TokenizedSample } from './types.js';

export interface TokenStore {
  readonly ids: Int32Array;
  readonly labels: Int32Array;
  /** Start of each sample in `ids`, plus the total at the end (length numSamples + 1). */
  readonly offsets: Float64Array;
}

/** Number of samples in a store. */
export function storeSize(store: TokenStore): number {
  return store.offsets.length - 1;
}

/** Token count of sample `s`. */
export function sampleLength(store: TokenStore, s: number): number {
  return store.offsets[s + 1]! - store.offsets[s]!;
}

/** The ids and labels of sample `s` (views, not copies). */
export function sampleAt(store: TokenStore, s: number): TokenizedSample {
  const a = store.offsets[s]!;
  const b = store.offsets[s + 1]!;
  return { ids: store.ids.subarray(a, b), labels: store.labels.subarray(a, b) };
}

/** Appends samples into growing arrays (capacity doubles), then `finish()` trims them. */
export class TokenStoreBuilder {
  private ids: Int32Array = new Int32Array(1 << 16);
  private labels: Int32Array = new Int32Array(1 << 16);
  private offsets = new Float64Array(1 << 10);
  private tokens = 0;
  private samples = 0;

  get numSamples(): number {
    return this.samples;
  }

  /** Append a sample; returns its index. */
  push(sample: TokenizedSample): number {
    const n = sample.ids.length;
    if (this.tokens + n > this.ids.length) {
      let cap = this.ids.length;
      while (cap < this.tokens + n) cap *= 2;
      this.ids = grow(this.ids, cap, this.tokens);
      this.labels = grow(this.labels, cap, this.tokens);
    }
    if (this.samples + 2 > this.offsets.length) {
      const next = new Float64Array(this.offsets.length * 2);
      next.set(this.offsets.subarray(0, this.samples + 1));
      this.offsets = next;
    }
    this.ids.set(sample.ids, this.tokens);
    this.labels.set(sample.labels, this.tokens);
    this.tokens += n;
    this.samples += 1;
    this.offsets[this.samples] = this.tokens;
    return this.samples - 1;
  }

  /** The finished store (arrays trimmed to their contents). */
  finish(): TokenStore {
    return {
      ids: this.ids.slice(0, this.tokens),
      labels: this.labels.slice(0, this.tokens),
      offsets: this.offsets.slice(0, this.samples + 1),
    };
  }
}

function grow(a: Int32Array, cap: number, used: number): Int32Array {
  const next = new Int32Array(cap);
  next.set(a.subarray(0, used));
  return next;
}
