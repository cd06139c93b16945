/**
 * SentencePiece `tokenizer.model` (a protobuf `ModelProto`) -> Hugging Face `tokenizer.json`.
 *
 * The protobuf is read by hand (the schema is sentencepiece's `sentencepiece_model.proto`; only
 * the fields the conversion needs are kept). The conversion follows transformers'
 * `LlamaConverter` (convert_slow_tokenizer.py) in its `legacy: false` form, which is what
 * Llama-2 / Mistral checkpoints ship today:
 *   - model: BPE over the piece vocabulary (id = piece index), merges derived from the
 *     vocabulary and the scores as `SentencePieceExtractor` does, `byte_fallback`, `fuse_unk`;
 *   - normalizer: none, so whitespace is kept exactly (SentencePiece's own normalizer would
 *     collapse runs of spaces and trim, erasing code indentation);
 *   - pre-tokenizer: Metaspace (replacement '▁', prepend_scheme 'first', no split);
 *   - post-processor: BOS (and EOS when asked) around the text;
 *   - decoder: '▁' -> ' ', byte fallback, fuse, strip the one leading space.
 * https://github.com/google/sentencepiece/blob/master/src/sentencepiece_model.proto
 * https://github.com/huggingface/transformers/blob/main/src/transformers/convert_slow_tokenizer.py
 */
import { fail } from '../util/index.js';

/** Piece types of `SentencePiece.Type` (protobuf enum values 1..6). */
export type SentencePieceType = 'normal' | 'unknown' | 'control' | 'user_defined' | 'unused' | 'byte';

const PIECE_TYPES: Record<number, SentencePieceType> = {
  1: 'normal',
  2: 'unknown',
  3: 'control',
  4: 'user_defined',
  5: 'unused',
  6: 'byte',
};
const MODEL_TYPES: Record<number, SentencePieceModel['modelType']> = {
  1: 'unigram',
  2: 'bpe',
  3: 'word',
  4: 'char',
};

export interface SentencePiece {
  piece: string;
  score: number;
  type: SentencePieceType;
}

/** The parts of a `ModelProto` mft uses; defaults are the proto's own. */
export interface SentencePieceModel {
  pieces: SentencePiece[];
  modelType: 'unigram' | 'bpe' | 'word' | 'char';
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  /** NormalizerSpec.add_dummy_prefix: SentencePiece prepends '▁' to the text. */
  addDummyPrefix: boolean;
  /** NormalizerSpec.remove_extra_whitespaces: SentencePiece trims and collapses spaces (not kept, see above). */
  removeExtraWhitespaces: boolean;
  /** NormalizerSpec.name, e.g. 'identity' or 'nmt_nfkc'. */
  normalizerName: string;
}

// ---------------------------------------------------------------------------------------------
// Protobuf wire format: a message is a run of (key varint = field << 3 | wire type, value).

interface Field {
  field: number;
  wire: number;
  /** varint value (wire 0) */
  int: bigint;
  /** raw bytes (wire 1, 2, 5) */
  bytes: Uint8Array;
}

class ProtoReader {
  private pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly where: string,
  ) {}

  done(): boolean {
    return this.pos >= this.buf.length;
  }

  private varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.buf.length) this.corrupt('truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
    return this.corrupt('varint longer than 10 bytes');
  }

  private take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) this.corrupt(`field of ${n} bytes runs past the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  next(): Field {
    const key = this.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    switch (wire) {
      case 0:
        return { field, wire, int: this.varint(), bytes: new Uint8Array(0) };
      case 1:
        return { field, wire, int: 0n, bytes: this.take(8) };
      case 2:
        return { field, wire, int: 0n, bytes: this.take(Number(this.varint())) };
      case 5:
        return { field, wire, int: 0n, bytes: this.take(4) };
      default:
        return this.corrupt(`unsupported protobuf wire type ${wire} (field ${field})`);
    }
  }

  corrupt(what: string): never {
    return fail(
      this.where,
      `not a valid SentencePiece model: ${what} at byte ${this.pos}`,
      'pass the tokenizer.model file the checkpoint was trained with',
    );
  }
}

// ignoreBOM: a piece may be U+FEFF itself (Mistral's vocabulary has one), which must survive.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** int32 fields are varints; negative values arrive as 64-bit two's complement. */
function int32(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}

function f32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getFloat32(0, true);
}

function readPiece(bytes: Uint8Array, where: string, index: number): SentencePiece {
  const r = new ProtoReader(bytes, `${where}: piece ${index}`);
  const p: SentencePiece = { piece: '', score: 0, type: 'normal' };
  while (!r.done()) {
    const f = r.next();
    if (f.field === 1 && f.wire === 2) {
      try {
        p.piece = utf8.decode(f.bytes);
      } catch {
        r.corrupt('piece text is not UTF-8');
      }
    } else if (f.field === 2 && f.wire === 5) p.score = f32(f.bytes);
    else if (f.field === 3 && f.wire === 0) {
      const t = PIECE_TYPES[int32(f.int)];
      if (t === undefined) r.corrupt(`unknown piece type ${int32(f.int)}`);
      p.type = t;
    }
  }
  return p;
}

/**
 * Parse a SentencePiece `tokenizer.model` file.
 * @param bytes the file's bytes
 * @param where the file name, used in error messages
 * @example
 *   const spm = parseSentencePieceModel(readFileSync('tok512.model'), 'tok512.model');
 *   spm.pieces.length; // 512
 */
export function parseSentencePieceModel(bytes: Uint8Array, where: string): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [],
    modelType: 'unigram',
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    normalizerName: '',
  };
  const r = new ProtoReader(bytes, where);
  while (!r.done()) {
    const f = r.next();
    if (f.field === 1 && f.wire === 2) m.pieces.push(readPiece(f.bytes, where, m.pieces.length));
    else if (f.field === 2 && f.wire === 2) readTrainerSpec(f.bytes, where, m);
    else if (f.field === 3 && f.wire === 2) readNormalizerSpec(f.bytes, where, m);
  }
  if (m.pieces.length === 0) r.corrupt('no pieces');
  for (const [name, id] of [
    ['unk_id', m.unkId],
    ['bos_id', m.bosId],
    ['eos_id', m.eosId],
  ] as const) {
    if (id >= m.pieces.length) r.corrupt(`${name} ${id} is outside the ${m.pieces.length} pieces`);
  }
  return m;
}

function readTrainerSpec(bytes: Uint8Array, where: string, m: SentencePieceModel): void {
  const r = new ProtoReader(bytes, `${where}: trainer_spec`);
  while (!r.done()) {
    const f = r.next();
    if (f.wire !== 0) continue;
    const v = int32(f.int);
    if (f.field === 3) {
      const t = MODEL_TYPES[v];
      if (t === undefined) r.corrupt(`unknown model_type ${v}`);
      m.modelType = t;
    } else if (f.field === 35) m.byteFallback = v !== 0;
    else if (f.field === 40) m.unkId = v;
    else if (f.field === 41) m.bosId = v;
    else if (f.field === 42) m.eosId = v;
    else if (f.field === 43) m.padId = v;
  }
}

function readNormalizerSpec(bytes: Uint8Array, where: string, m: SentencePieceModel): void {
  const r = new ProtoReader(bytes, `${where}: normalizer_spec`);
  while (!r.done()) {
    const f = r.next();
    if (f.field === 1 && f.wire === 2) m.normalizerName = utf8.decode(f.bytes);
    else if (f.field === 3 && f.wire === 0) m.addDummyPrefix = f.int !== 0n;
    else if (f.field === 4 && f.wire === 0) m.removeExtraWhitespaces = f.int !== 0n;
  }
}

// ---------------------------------------------------------------------------------------------
// Merges from the vocabulary, as transformers' SentencePieceExtractor / generate_merges:
// every split of every piece into two pieces that are both in the vocabulary is a merge,
// ranked by the score of the merged piece (higher first); within one piece the splits are
// ordered by (id of left, id of right). Splits count Unicode code points, as Python strings do.
// This is the order of the tokenizer.json files Llama-2 and Mistral ship (checked in the tests
// against Mistral-7B-v0.1's: all 58,980 merges equal). Later transformers releases also break
// score ties by part length; that only reorders merges that build the same piece.

/**
 * BPE merges implied by a SentencePiece BPE vocabulary and its scores.
 * @param pieces [piece, score] in id order
 * @returns [left, right] pairs, highest-priority first
 */
export function bpeMergesFromScores(pieces: readonly (readonly [string, number])[]): [string, string][] {
  const vocab = new Map<string, number>();
  pieces.forEach(([p], id) => {
    if (!vocab.has(p)) vocab.set(p, id);
  });
  // Python's dict(vocab_scores): a piece listed twice keeps its last score, at its first position.
  const scoreOf = new Map<string, number>();
  for (const [p, s] of pieces) scoreOf.set(p, s);
  const merges: { l: string; r: string; score: number }[] = [];
  for (const [merged, score] of scoreOf) {
    const cps = Array.from(merged);
    const local: { l: string; r: string; score: number }[] = [];
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join('');
      const r = cps.slice(i).join('');
      if (vocab.has(l) && vocab.has(r)) local.push({ l, r, score });
    }
    local.sort((a, b) => vocab.get(a.l)! - vocab.get(b.l)! || vocab.get(a.r)! - vocab.get(b.r)!);
    merges.push(...local);
  }
  // Array.prototype.sort is stable, like Python's sorted(reverse=True) on equal keys.
  merges.sort((a, b) => b.score - a.score);
  return merges.map((m) => [m.l, m.r]);
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

/** Options of the converted tokenizer. */
export interface ConvertOptions {
  /** Post-processor adds BOS (Llama default true). */
  addBos?: boolean;
  /** Post-processor adds EOS (Llama default false). */
  addEos?: boolean;
}

/**
 * Build the Hugging Face `tokenizer.json` object for a SentencePiece BPE model, as transformers'
 * `LlamaConverter` with `legacy: false` does (see the file header). The vocabulary is a `Map`
 * so that it keeps id order; serialize with `stringifyTokenizerJson`.
 * @param spm a parsed model (must be BPE)
 * @param where the model file name, for errors
 */
export function sentencePieceToTokenizerJson(
  spm: SentencePieceModel,
  where: string,
  opts: ConvertOptions = {},
): Record<string, unknown> {
  if (spm.modelType !== 'bpe') {
    fail(
      where,
      `SentencePiece model type '${spm.modelType}' is not supported, only 'bpe'`,
      'convert a BPE tokenizer.model (Llama / Mistral style)',
    );
  }
  const addBos = opts.addBos ?? true;
  const addEos = opts.addEos ?? false;
  const unk = spm.pieces[spm.unkId]!.piece;
  const bos = spm.pieces[spm.bosId]!.piece;
  const eos = spm.pieces[spm.eosId]!.piece;

  // LlamaConverter.vocab: the first three pieces (unk, bos, eos) get score 0.
  const scored = spm.pieces.map((p, id) => [p.piece, id < 3 ? 0 : p.score] as const);
  const vocab = new Map<string, number>();
  scored.forEach(([p], id) => {
    if (!vocab.has(p)) vocab.set(p, id);
  });
  const merges = bpeMergesFromScores(scored);

  // Unknown and control pieces are special added tokens; user-defined pieces are added
  // tokens that are not special (SpmConverter), so they are matched before BPE.
  const addedTokens = spm.pieces.flatMap((p, id) =>
    p.type === 'unknown' || p.type === 'control' || p.type === 'user_defined'
      ? [
          {
            id,
            content: p.piece,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: p.type !== 'user_defined',
          },
        ]
      : [],
  );

  const specialTokens: Record<string, unknown> = {};
  const template = (typeId: number, seq: 'A' | 'B') => [
    ...(addBos ? [{ SpecialToken: { id: bos, type_id: typeId } }] : []),
    { Sequence: { id: seq, type_id: typeId } },
    ...(addEos ? [{ SpecialToken: { id: eos, type_id: typeId } }] : []),
  ];
  if (addBos) specialTokens[bos] = { id: bos, ids: [spm.bosId], tokens: [bos] };
  if (addEos) specialTokens[eos] = { id: eos, ids: [spm.eosId], tokens: [eos] };

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: template(0, 'A'),
      pair: [...template(0, 'A'), ...template(1, 'B')],
      special_tokens: specialTokens,
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: spm.byteFallback,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/**
 * JSON with 2-space indentation (as `tokenizers` saves with pretty=true), where a `Map` is
 * written as an object in its own key order. A plain object would move integer-like keys
 * (a piece "1") to the front and so lose the id order of the vocabulary.
 */
export function stringifyTokenizerJson(value: unknown): string {
  return `${stringify(value, '')}\n`;
}

function stringify(v: unknown, indent: string): string {
  const inner = `${indent}  `;
  if (v instanceof Map) {
    if (v.size === 0) return '{}';
    const rows = [...v].map(([k, x]) => `${inner}${JSON.stringify(k)}: ${stringify(x, inner)}`);
    return `{\n${rows.join(',\n')}\n${indent}}`;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => `${inner}${stringify(x, inner)}`).join(',\n')}\n${indent}]`;
  }
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v);
    if (entries.length === 0) return '{}';
    const rows = entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${stringify(x, inner)}`);
    return `{\n${rows.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(v);
}
