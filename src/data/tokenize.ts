/**
 * Formatted records -> token ids and labels (Hugging Face convention, unshifted: `labels[t]` is the
 * target of the prediction made at position t - 1, -100 = no loss).
 *
 * BOS: whatever the tokenizer's post-processor adds (`encode(text, {addSpecialTokens: true})`),
 * unless the text already starts with the BOS token (chat templates that print `bos_token`).
 * EOS: appended to every sample when the recipe says `add_eos`, and trained on, unless the sample
 * already ends with it (a chat template that closes each turn with EOS, then a newline).
 *
 * Where only part of a sample is trained, the mask boundary must fall between tokens. Each part
 * boundary b is tokenized as a prefix: the ids of `text[:b]` must be the first ids of the whole
 * text, and the part's ids are the whole's ids between two boundaries. So a prompt gets exactly the
 * ids it gets at inference (no extra "▁" that a SentencePiece tokenizer puts at the start of every
 * encoded string). When a token straddles a boundary (a prompt ending in a space before a word),
 * completion/alpaca parts are tokenized separately and concatenated instead; chat records must
 * split cleanly, and one that does not is an error that says so.
 */

import { IGNORE_INDEX } from '../model/batch.js';
import type { MftTokenizer } from '../tokenizer/index.js';
import { RecordError } from './record-error.js';
import type { FormattedRecord, TextSegment, TokenizedSample } from './types.js';

/** The three fill-in-the-middle token strings a tokenizer may have. */
export interface FimTokens {
  prefix: number;
  middle: number;
  suffix: number;
}

// StarCoder / SantaCoder, Qwen2.5-Coder, CodeLlama (and its SentencePiece spelling).
const FIM_SPELLINGS: [string, string, string][] = [
  ['<fim_prefix>', '<fim_middle>', '<fim_suffix>'],
  ['<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>'],
  ['<PRE>', '<MID>', '<SUF>'],
  ['▁<PRE>', '▁<MID>', '▁<SUF>'],
];

/** The tokenizer's FIM token ids, or null when it has none. */
export function findFimTokens(tok: MftTokenizer): FimTokens | null {
  for (const [p, m, s] of FIM_SPELLINGS) {
    const prefix = tok.tokenToId(p);
    const middle = tok.tokenToId(m);
    const suffix = tok.tokenToId(s);
    if (prefix !== null && middle !== null && suffix !== null) return { prefix, middle, suffix };
  }
  return null;
}

/** Settings of `tokenizeRecord` that hold for a whole dataset. */
export interface TokenizeOptions {
  addEos: boolean;
  /** Needed for `fim` records. */
  fim: FimTokens | null;
}

/** The text of the BOS token, when the tokenizer has one (to notice templates that print it). */
function bosText(tok: MftTokenizer): string | null {
  return tok.bosId === null ? null : tok.decode([tok.bosId], { skipSpecialTokens: false });
}

/** `encode` without a trailing EOS that a post-processor may add (EOS is appended once, at the end). */
function encodeNoEos(tok: MftTokenizer, text: string, opts: { addSpecialTokens: boolean }): number[] {
  const { addSpecialTokens } = opts;
  const ids = tok.encode(text, { addSpecialTokens });
  if (addSpecialTokens && tok.addsEos && ids.length > 0 && ids[ids.length - 1] === tok.eosId) ids.pop();
  return ids;
}

// Encoding without BOS/EOS: the pieces of a fill-in-the-middle sample.
const PLAIN = { addSpecialTokens: false };

function startsWith(ids: number[], prefix: number[]): boolean {
  if (prefix.length > ids.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}

/** Adjacent segments with the same flag merged, empty ones dropped. */
function mergeSegments(segments: TextSegment[]): TextSegment[] {
  const out: TextSegment[] = [];
  for (const s of segments) {
    if (s.text === '') continue;
    const last = out[out.length - 1];
    if (last && last.trained === s.trained) last.text += s.text;
    else out.push({ ...s });
  }
  return out;
}

/**
 * Token ids and per-token trained flags of text segments (see the module comment).
 * @param opts `strict` (chat records): a token straddling a part boundary is an error, not re-tokenized apart
 */
export function tokenizeSegments(
  tok: MftTokenizer,
  segments: TextSegment[],
  opts: { strict: boolean },
): { ids: number[]; trained: boolean[] } {
  const { strict } = opts;
  const parts = mergeSegments(segments);
  if (parts.length === 0) throw new RecordError('empty text');
  const whole = parts.map((p) => p.text).join('');
  const bos = bosText(tok);
  const specials = !(bos !== null && bos !== '' && whole.startsWith(bos));
  const ids = encodeNoEos(tok, whole, { addSpecialTokens: specials });
  const trained = new Array<boolean>(ids.length).fill(false);
  let consistent = true;
  let start = 0;
  let offset = 0;
  for (let k = 0; k < parts.length && consistent; k++) {
    offset += parts[k]!.text.length;
    let end = ids.length;
    if (k < parts.length - 1) {
      const prefixIds = encodeNoEos(tok, whole.slice(0, offset), { addSpecialTokens: specials });
      if (!startsWith(ids, prefixIds) || prefixIds.length < start) {
        consistent = false;
        break;
      }
      end = prefixIds.length;
    }
    trained.fill(parts[k]!.trained, start, end);
    start = end;
  }
  if (consistent) return { ids, trained };
  if (strict) {
    throw new RecordError(
      'messages: tokenizing the conversation turn by turn does not give the tokens of the whole conversation (a token spans the end of a turn), so the loss mask would be wrong',
      'use a chat template whose turns end with a special token or a newline',
    );
  }
  // Tokenize each part alone and concatenate: the mask boundary stays exact.
  const outIds: number[] = [];
  const outTrained: boolean[] = [];
  parts.forEach((p, k) => {
    const partIds = encodeNoEos(tok, p.text, { addSpecialTokens: k === 0 && specials });
    for (const id of partIds) {
      outIds.push(id);
      outTrained.push(p.trained);
    }
  });
  return { ids: outIds, trained: outTrained };
}

/**
 * A pre-tokenized record as a sample, used verbatim; every id (and label) must be below the
 * vocabulary size. Without labels every token is a target (each token after the first carries loss).
 * @param vocab its size, and how messages name it (`the vocabulary`, `the model's vocabulary`)
 * @throws RecordError naming the first id outside the vocabulary
 */
export function pretokenizedSample(
  rec: Extract<FormattedRecord, { kind: 'tokens' }>,
  vocab: { size: number; name: string },
): TokenizedSample {
  const check = (key: string, values: readonly number[]) => {
    values.forEach((id, i) => {
      if (id >= vocab.size) {
        throw new RecordError(`${key}[${i}]: id ${id} is outside ${vocab.name} (0..${vocab.size - 1})`);
      }
    });
  };
  check('input_ids', rec.inputIds);
  if (rec.labels) check('labels', rec.labels);
  const ids = Int32Array.from(rec.inputIds);
  return { ids, labels: rec.labels ? Int32Array.from(rec.labels) : ids.slice() };
}

/**
 * Tokenize one formatted record into ids and labels (unshifted, -100 where no loss).
 * @throws RecordError for ids outside the vocabulary or text that does not split at its parts
 */
export function tokenizeRecord(
  tok: MftTokenizer,
  rec: FormattedRecord,
  opts: TokenizeOptions,
): TokenizedSample {
  if (rec.kind === 'tokens') return pretokenizedSample(rec, { size: tok.vocabSize, name: 'the vocabulary' });
  let ids: number[];
  let trained: boolean[];
  if (rec.kind === 'fim') {
    const fim = opts.fim;
    if (!fim) throw new Error('tokenizeRecord: a fim record needs the tokenizer FIM tokens');
    // PSM order: <PRE> prefix <SUF> suffix <MID> middle, all trained.
    ids = [
      ...(tok.addsBos && tok.bosId !== null ? [tok.bosId] : []),
      fim.prefix,
      ...encodeNoEos(tok, rec.prefix, PLAIN),
      fim.suffix,
      ...encodeNoEos(tok, rec.suffix, PLAIN),
      fim.middle,
      ...encodeNoEos(tok, rec.middle, PLAIN),
    ];
    trained = ids.map(() => true);
  } else {
    ({ ids, trained } = tokenizeSegments(tok, rec.segments, { strict: rec.chat }));
  }
  if (opts.addEos && tok.eosId !== null && !endsWithEos(tok, ids)) {
    ids.push(tok.eosId);
    trained.push(true);
  }
  const labels = new Int32Array(ids.length);
  for (let t = 0; t < ids.length; t++) labels[t] = trained[t] ? ids[t]! : IGNORE_INDEX;
  return { ids: Int32Array.from(ids), labels };
}

/** Whether `ids` already end with EOS, possibly followed by whitespace (a chat template's end of turn). */
function endsWithEos(tok: MftTokenizer, ids: number[]): boolean {
  const at = ids.lastIndexOf(tok.eosId!);
  if (at < 0) return false;
  return at === ids.length - 1 || tok.decode(ids.slice(at + 1)).trim() === '';
}

/** Number of positions that carry loss once labels are shifted: targets 1..L-1 that are not -100. */
export function trainedTargets(labels: Int32Array): number {
  let n = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}
