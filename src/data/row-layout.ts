/**
 * The layout of a row of documents, shared by the training rows of a packed split and the batches
 * of an evaluation. In a row of `seqLen` tokens holding documents d = 0, 1, ...:
 *   inputIds[t]    the document's tokens, then pads
 *   labels[t]      the next token of the same document when it carries loss, else -100; the last
 *                  token of each document and every pad: -100
 *   segmentIds[t]  d for document d; pads form one more segment of their own (no empty attention row)
 *   positionIds[t] position within the document, from 0 (pads count from 0 too)
 */
import { IGNORE_INDEX } from '../model/batch.js';
import type { TokenizedSample } from './types.js';

/** The four arrays of one or more rows, row-major. */
export interface RowArrays {
  inputIds: Int32Array;
  labels: Int32Array;
  segmentIds: Int32Array;
  positionIds: Int32Array;
}

/** A document to place in a row: its length, and the id and (unshifted) label of token t. */
export interface RowDocument {
  readonly length: number;
  id(t: number): number;
  /** The label of token t itself (Hugging Face convention); -100 carries no loss. */
  label(t: number): number;
}

/** Four zeroed arrays of `n` entries. */
export function rowArrays(n: number): RowArrays {
  return {
    inputIds: new Int32Array(n),
    labels: new Int32Array(n),
    segmentIds: new Int32Array(n),
    positionIds: new Int32Array(n),
  };
}

/** A tokenized sample as a row document. */
export function sampleDocument(sample: TokenizedSample): RowDocument {
  return { length: sample.ids.length, id: (t) => sample.ids[t]!, label: (t) => sample.labels[t]! };
}

/**
 * Write row `row` of `out` (entries `row * seqLen ..`): the documents one after another, then pads.
 * @throws RangeError when the documents hold more than `seqLen` tokens
 * @example writeRow(out, 0, 8, 0, [sampleDocument({ ids, labels })]);
 */
export function writeRow(
  out: RowArrays,
  row: number,
  seqLen: number,
  padId: number,
  docs: readonly RowDocument[],
): void {
  const at = row * seqLen;
  let pos = 0;
  docs.forEach((doc, segment) => {
    const len = doc.length;
    if (pos + len > seqLen) {
      throw new RangeError(
        `writeRow: document ${segment} overflows row ${row}: seqLen ${seqLen} is too short`,
      );
    }
    for (let t = 0; t < len; t++) {
      const p = at + pos + t;
      out.inputIds[p] = doc.id(t);
      out.labels[p] = t < len - 1 ? doc.label(t + 1) : IGNORE_INDEX;
      out.segmentIds[p] = segment;
      out.positionIds[p] = t;
    }
    pos += len;
  });
  for (let t = pos; t < seqLen; t++) {
    out.inputIds[at + t] = padId;
    out.labels[at + t] = IGNORE_INDEX;
    out.segmentIds[at + t] = docs.length;
    out.positionIds[at + t] = t - pos;
  }
}
