/**
 * The sampler, which takes the logits of the next token and returns a token id (llama2.c's
 * `sample`): argmax at temperature 0, otherwise softmax(logits / temperature) restricted to the
 * nucleus, the smallest set of most likely tokens whose probability reaches top_p (Holtzman et al.
 * 2019, arXiv:1904.09751), drawn with a seeded Rng so a seed replays the same text.
 */
import type { Rng } from '../util/index.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax); higher = flatter distribution. */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = sample from the whole distribution. */
  topP: number;
}

/** Index of the largest logit (the first one on ties, as llama2.c). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[best] as number)) best = i;
  return best;
}

/**
 * The repetition penalty of CTRL (Keskar et al. 2019, arXiv:1909.05858) as transformers'
 * `RepetitionPenaltyLogitsProcessor` applies it: the logit of every id already seen is divided by
 * `penalty` when positive and multiplied by it when negative, in place. Each id counts once.
 * @example applyRepetitionPenalty(logits, [...promptIds, ...generated], 1.1);
 */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  for (const id of new Set(seen)) {
    const l = logits[id];
    if (l === undefined) continue;
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/**
 * Pick the next token.
 * @param logits `[vocab]` logits of the last position
 * @param rng consumed once per sampled token (not at temperature 0)
 * @example
 *   const id = sampleToken(logits, { temperature: 0.8, topP: 0.9 }, new Rng(seed));
 */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  if (!(opts.temperature > 0)) return argmax(logits);
  const n = logits.length;
  // softmax(logits / temperature) in float64
  const probs = new Float64Array(n);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) max = Math.max(max, (logits[i] as number) / opts.temperature);
  let z = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[i] as number) / opts.temperature - max);
    z += probs[i] as number;
  }
  for (let i = 0; i < n; i++) probs[i] = (probs[i] as number) / z;

  // nucleus: most likely first, up to the first prefix whose mass reaches top_p
  let order: number[];
  let mass = 1;
  if (opts.topP < 1) {
    order = Array.from({ length: n }, (_, i) => i).sort(
      (a, b) => (probs[b] as number) - (probs[a] as number) || a - b,
    );
    let cumulative = 0;
    let last = n - 1;
    for (let k = 0; k < n; k++) {
      cumulative += probs[order[k] as number] as number;
      if (cumulative >= opts.topP) {
        last = k;
        break;
      }
    }
    order = order.slice(0, last + 1);
    mass = cumulative;
  } else {
    order = Array.from({ length: n }, (_, i) => i);
  }
  const r = rng.next() * mass;
  let acc = 0;
  for (const i of order) {
    acc += probs[i] as number;
    if (r < acc) return i;
  }
  return order[order.length - 1] as number; // rounding: r landed past the last bucket
}
