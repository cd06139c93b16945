/**
 * A tokenized sample as text with the tokens that carry no loss marked: grey on a colour terminal,
 * between ⟦ and ⟧ otherwise. A token carries loss when it is a target (not the first token of the
 * sample) and its label is not -100.
 */

import { IGNORE_INDEX } from '../model/batch.js';
import type { MftTokenizer } from '../tokenizer/index.js';
import type { TokenizedSample } from './types.js';

const GREY = '\x1b[90m';
const RESET = '\x1b[39m';

/**
 * Render a sample. Each run of tokens with the same loss flag is cut from the decoding of the whole
 * prefix up to its end (so a SentencePiece "▁" at a run start keeps its space), falling back to
 * decoding the run alone when a decoder does not extend prefixes.
 * @example
 *   renderSample(tok, sample, { color: false }); // '⟦<s> Q: 1+1?\nA:⟧ 2</s>'
 */
export function renderSample(tok: MftTokenizer, sample: TokenizedSample, opts: { color: boolean }): string {
  const { color } = opts;
  const ids = Array.from(sample.ids);
  const trainedAt = (t: number) => t > 0 && sample.labels[t] !== IGNORE_INDEX;
  let out = '';
  let prefixText = '';
  let start = 0;
  for (let t = 1; t <= ids.length; t++) {
    if (t < ids.length && trainedAt(t) === trainedAt(start)) continue;
    const upTo = tok.decode(ids.slice(0, t), { skipSpecialTokens: false });
    const text = upTo.startsWith(prefixText)
      ? upTo.slice(prefixText.length)
      : tok.decode(ids.slice(start, t), { skipSpecialTokens: false });
    if (trainedAt(start)) out += text;
    else out += color ? `${GREY}${text}${RESET}` : `⟦${text}⟧`;
    prefixText = upTo;
    start = t;
  }
  return out;
}
