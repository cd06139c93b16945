/**
 * Samples longer than `sequence_len`:
 *   split     cut into pieces of `sequence_len` tokens (the last one shorter), each its own sample
 *   truncate  keep the first `sequence_len` tokens
 *   drop      leave the sample out
 * A piece starts a new document in its row, so its first token is predicted by nothing: cutting
 * loses one target per cut, and each piece's last token predicts nothing, as any sample's.
 */
import type { TokenizedSample } from './types.js';

export type Truncation = 'split' | 'truncate' | 'drop';

/**
 * The samples that fit `seqLen` for one tokenized sample (none when it is dropped).
 * @example
 *   truncateSample({ids: [1, 2, 3, 4, 5], labels: [...]}, 2, 'split'); // 3 samples: [1,2] [3,4] [5]
 */
export function truncateSample(sample: TokenizedSample, seqLen: number, mode: Truncation): TokenizedSample[] {
  const n = sample.ids.length;
  if (n <= seqLen) return [sample];
  if (mode === 'drop') return [];
  if (mode === 'truncate')
    return [{ ids: sample.ids.subarray(0, seqLen), labels: sample.labels.subarray(0, seqLen) }];
  const pieces: TokenizedSample[] = [];
  for (let start = 0; start < n; start += seqLen) {
    pieces.push({
      ids: sample.ids.subarray(start, start + seqLen),
      labels: sample.labels.subarray(start, start + seqLen),
    });
  }
  return pieces;
}
