/**
 * All tokenized samples of a dataset in flat typed arrays: sample s is
 * `ids[offsets[s] .. offsets[s+1])` with its labels at the same positions. No per-sample objects,
 * so millions of samples stay compact, and the cache file is these arrays written out as they are.
 *
 * The arrays are as small as the data allows: ids take 2 bytes while every id fits in 16 bits
 * (vocabularies up to 65,536), else 4; labels take 1 byte, a mask, while every label is its
 * token's id or -100 (what every recipe produces), else 4 (pre-tokenized records may carry labels
 * of their own). So a Llama or Mistral dataset costs 3 bytes per token, not 8.
 */
import { IGNORE_INDEX } from '../model/batch.js';
import type { TokenizedSample } from './types.js';

export interface TokenStore {
  /** Token ids: Uint16Array while every id fits in 16 bits, else Int32Array. */
  readonly ids: Uint16Array | Int32Array;
  /**
   * Labels: a Uint8Array mask (1: the label is the token's id, 0: -100) while every label is one
   * of those, else the labels themselves. Read them with `labelAt`.
   */
  readonly labels: Uint8Array | Int32Array;
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

/** The label at flat position `i` (-100: no loss). */
export function labelAt(store: TokenStore, i: number): number {
  const { labels } = store;
  if (labels instanceof Int32Array) return labels[i]!;
  return labels[i] ? store.ids[i]! : IGNORE_INDEX;
}

/** Number of positions of sample `s` that carry loss once labels are shifted (targets 1..L-1). */
export function sampleTrainedTargets(store: TokenStore, s: number): number {
  let n = 0;
  for (let i = store.offsets[s]! + 1; i < store.offsets[s + 1]!; i++)
    if (labelAt(store, i) !== IGNORE_INDEX) n++;
  return n;
}

/** The ids and labels of sample `s` (fresh Int32Arrays). */
export function sampleAt(store: TokenStore, s: number): TokenizedSample {
  const a = store.offsets[s]!;
  const b = store.offsets[s + 1]!;
  const labels = new Int32Array(b - a);
  for (let i = a; i < b; i++) labels[i - a] = labelAt(store, i);
  return { ids: Int32Array.from(store.ids.subarray(a, b)), labels };
}

const U16_MAX = 0xffff;

/**
 * Appends samples into growing arrays (capacity doubles), then `finish()` trims them. Ids and
 * labels start in their compact types and widen once, for good, at the first value that does not
 * fit.
 */
export class TokenStoreBuilder {
  private ids: Uint16Array | Int32Array = new Uint16Array(1 << 16);
  private labels: Uint8Array | Int32Array = new Uint8Array(1 << 16);
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
    if (this.ids instanceof Uint16Array && !sample.ids.every((id) => id >= 0 && id <= U16_MAX)) {
      this.ids = widen(this.ids, this.tokens);
    }
    if (this.labels instanceof Uint8Array && !isMask(sample)) this.labels = this.labelsWidened();
    this.ids.set(sample.ids, this.tokens);
    if (this.labels instanceof Int32Array) {
      this.labels.set(sample.labels, this.tokens);
    } else {
      for (let t = 0; t < n; t++) this.labels[this.tokens + t] = sample.labels[t] === IGNORE_INDEX ? 0 : 1;
    }
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

  /** The mask turned into labels, same capacity. */
  private labelsWidened(): Int32Array {
    const out = new Int32Array(this.labels.length);
    for (let i = 0; i < this.tokens; i++) out[i] = this.labels[i] ? this.ids[i]! : IGNORE_INDEX;
    return out;
  }
}

/** True when every label of the sample is its id or -100. */
function isMask(sample: TokenizedSample): boolean {
  return sample.labels.every((l, t) => l === IGNORE_INDEX || l === sample.ids[t]);
}

function grow<A extends Uint8Array | Uint16Array | Int32Array>(a: A, cap: number, used: number): A {
  const next = new (a.constructor as new (n: number) => A)(cap);
  next.set(a.subarray(0, used));
  return next;
}

function widen(a: Uint16Array, used: number): Int32Array {
  const next = new Int32Array(a.length);
  next.set(a.subarray(0, used));
  return next;
}
