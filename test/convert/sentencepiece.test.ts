import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  bpeMergesFromScores,
  parseSentencePieceModel,
  type SentencePieceModel,
  sentencePieceToTokenizerJson,
  stringifyTokenizerJson,
} from '../../src/convert/sentencepiece.js';
import { loadTokenizer, type MftTokenizer } from '../../src/tokenizer/tokenizer.js';
import { MftError } from '../../src/util/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

const rust = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');

const TOK512 = 'test/fixtures/stories260K/tok512.model';
const MISTRAL = 'test/fixtures/tokenizers/mistral-7b-v0.1';

const tempDir = () => makeTempDir('spm');
afterAll(removeTempDirs);

/** Convert a tokenizer.model into a folder holding only tokenizer.json. */
function convertToDir(modelPath: string): string {
  const spm = parseSentencePieceModel(readFileSync(modelPath), modelPath);
  const d = tempDir();
  writeFileSync(
    join(d, 'tokenizer.json'),
    stringifyTokenizerJson(sentencePieceToTokenizerJson(spm, modelPath)),
  );
  return d;
}

// ---------------------------------------------------------------------------------------------
// An independent SentencePiece BPE encoder (the classic algorithm of sentencepiece's
// bpe_model.cc and llama2.c's run.c): '▁' prefix, spaces -> '▁', start from single characters,
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece (leftmost
// on ties), then map leftover characters to their UTF-8 bytes <0xNN>.

function spmReferenceEncode(spm: SentencePieceModel, text: string): number[] {
  const normal = new Map<string, { id: number; score: number }>();
  const byteIds = new Map<string, number>();
  spm.pieces.forEach((p, id) => {
    if (p.type === 'normal' || p.type === 'user_defined') normal.set(p.piece, { id, score: p.score });
    if (p.type === 'byte') byteIds.set(p.piece, id);
  });
  const symbols = Array.from(`▁${text.replaceAll(' ', '▁')}`);
  for (;;) {
    let best = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const merged = normal.get(symbols[i]! + symbols[i + 1]!);
      if (merged && merged.score > bestScore) {
        best = i;
        bestScore = merged.score;
      }
    }
    if (best < 0) break;
    symbols.splice(best, 2, symbols[best]! + symbols[best + 1]!);
  }
  return symbols.flatMap((s) => {
    const hit = normal.get(s);
    if (hit) return [hit.id];
    return Array.from(new TextEncoder().encode(s), (b) => {
      const id = byteIds.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      return id ?? spm.unkId;
    });
  });
}

const SINGLE_SPACED = [
  'Once upon a time, there was a little girl named Lily.',
  'She loved to play outside in the park. One day, she saw a big, red ball.',
  'Lily\'s mom said, "Let\'s go!" Tom was sad.\nThe end.',
  'The cat sat on the mat. The dog ran after the ball and the bird flew away.',
  'numbers 0 1 23 456 7890 and symbols #$%&*+-=/\\|~^`@',
  'café naïve über straße Ωmega',
  'emoji 🤖 and CJK 中文 and Arabic مرحبا',
  'x',
  'Zebra quickly jumped; QUIET vexing fjord-nymphs!',
];

describe('parseSentencePieceModel', () => {
  test('tok512.model: 512 pieces, BPE with byte fallback, identity normalizer', () => {
    const spm = parseSentencePieceModel(readFileSync(TOK512), TOK512);
    expect(spm.pieces.length).toBe(512);
    expect(spm.modelType).toBe('bpe');
    expect(spm.byteFallback).toBe(true);
    expect([spm.unkId, spm.bosId, spm.eosId, spm.padId]).toEqual([0, 1, 2, -1]);
    expect(spm.normalizerName).toBe('identity');
    expect(spm.removeExtraWhitespaces).toBe(true);
    const counts: Record<string, number> = {};
    for (const p of spm.pieces) counts[p.type] = (counts[p.type] ?? 0) + 1;
    expect(counts).toEqual({ unknown: 1, control: 2, byte: 256, normal: 253 });
    expect(spm.pieces.slice(0, 4).map((p) => p.piece)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
  });

  test('pieces and scores equal llama2.c tok512.bin (an independent export of the same vocabulary)', () => {
    const spm = parseSentencePieceModel(readFileSync(TOK512), TOK512);
    // tok512.bin: int32 max_token_length, then per token: float32 score, int32 length, bytes.
    // llama2.c's export writes '▁' as ' ' and <s> / </s> as '\n<s>\n' / '\n</s>\n'.
    const bin = readFileSync('test/fixtures/stories260K/tok512.bin');
    let off = 4;
    for (let i = 0; i < 512; i++) {
      const score = bin.readFloatLE(off);
      const len = bin.readInt32LE(off + 4);
      const text = bin.subarray(off + 8, off + 8 + len).toString('utf8');
      off += 8 + len;
      const p = spm.pieces[i]!;
      let want = p.piece.replaceAll('▁', ' ');
      if (i === 1 || i === 2) want = `\n${want}\n`;
      expect(text).toBe(want);
      expect(score).toBe(p.score);
    }
    expect(off).toBe(bin.length);
  });

  test('mistral tokenizer.model keeps a U+FEFF piece (no BOM stripping)', () => {
    const spm = parseSentencePieceModel(readFileSync(join(MISTRAL, 'tokenizer.model')), 'tokenizer.model');
    expect(spm.pieces.length).toBe(32000);
    expect(spm.pieces[31759]!.piece).toBe('\uFEFF');
    expect(spm.removeExtraWhitespaces).toBe(false);
  });

  // A tiny protobuf writer for hand-made models.
  const varint = (v: bigint): number[] => {
    let x = BigInt.asUintN(64, v);
    const out: number[] = [];
    do {
      const b = Number(x & 0x7fn);
      x >>= 7n;
      out.push(x > 0n ? b | 0x80 : b);
    } while (x > 0n);
    return out;
  };
  const key = (field: number, wire: number) => varint(BigInt((field << 3) | wire));
  const bytesField = (field: number, b: number[]) => [...key(field, 2), ...varint(BigInt(b.length)), ...b];
  const str = (field: number, s: string) => bytesField(field, Array.from(Buffer.from(s, 'utf8')));
  const f32 = (field: number, v: number) => {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    return [...key(field, 5), ...b];
  };
  const int = (field: number, v: number) => [...key(field, 0), ...varint(BigInt(v))];
  const piece = (p: string, score: number, type: number) =>
    bytesField(1, [...str(1, p), ...f32(2, score), ...int(3, type)]);

  test('hand-made model: defaults, negative ids, unknown fields of every wire type are skipped', () => {
    const bytes = Uint8Array.from([
      ...piece('<unk>', 0, 2),
      ...piece('<s>', 0, 3),
      ...piece('</s>', 0, 3),
      ...piece('a', -1, 1),
      ...bytesField(1, str(1, 'b')), // score and type left at their defaults (0, NORMAL)
      ...bytesField(2, [
        ...int(3, 2),
        ...int(35, 1),
        ...int(43, -1),
        ...int(41, 1),
        ...key(7, 1),
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
      ]),
      ...bytesField(3, [...str(1, 'nmt_nfkc'), ...int(3, 0), ...f32(9, 1.5)]),
      ...bytesField(4, [1, 2, 3]),
    ]);
    const spm = parseSentencePieceModel(bytes, 'x.model');
    expect(spm.pieces.map((p) => [p.piece, p.score, p.type])).toEqual([
      ['<unk>', 0, 'unknown'],
      ['<s>', 0, 'control'],
      ['</s>', 0, 'control'],
      ['a', -1, 'normal'],
      ['b', 0, 'normal'],
    ]);
    expect(spm).toMatchObject({ modelType: 'bpe', byteFallback: true, padId: -1, addDummyPrefix: false });
    expect(spm.normalizerName).toBe('nmt_nfkc');
  });

  test('truncated or garbage files are MftErrors naming the file', () => {
    const good = readFileSync(TOK512);
    expect(() => parseSentencePieceModel(good.subarray(0, 1000), 'tok.model')).toThrow(MftError);
    expect(() => parseSentencePieceModel(good.subarray(0, 1000), 'tok.model')).toThrow(
      /^tok\.model: not a valid SentencePiece model: field of \d+ bytes runs past the end/,
    );
    expect(() => parseSentencePieceModel(Uint8Array.from([0x0b, 1, 2]), 'junk.bin')).toThrow(
      /junk\.bin: not a valid SentencePiece model: unsupported protobuf wire type 3/,
    );
    expect(() => parseSentencePieceModel(new Uint8Array(0), 'empty.model')).toThrow(/no pieces/);
    expect(() =>
      parseSentencePieceModel(Uint8Array.from(bytesField(1, [...str(1, 'a'), ...int(3, 9)])), 'p.model'),
    ).toThrow(/p\.model: piece 0: not a valid SentencePiece model: unknown piece type 9/);
  });

  test('a unigram model is refused by the converter', () => {
    const bytes = Uint8Array.from([
      ...piece('<unk>', 0, 2),
      ...piece('<s>', 0, 3),
      ...piece('</s>', 0, 3),
      ...bytesField(2, int(3, 1)),
    ]);
    const spm = parseSentencePieceModel(bytes, 'uni.model');
    expect(() => sentencePieceToTokenizerJson(spm, 'uni.model')).toThrow(
      /uni\.model: SentencePiece model type 'unigram' is not supported, only 'bpe'/,
    );
  });
});

describe('bpeMergesFromScores', () => {
  test('every two-piece split of a piece, by merged score, splits ordered by piece ids', () => {
    const merges = bpeMergesFromScores([
      ['<unk>', 0],
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['ab', -1],
      ['bc', -2],
      ['abc', -3],
      ['cab', -0.5],
    ]);
    expect(merges).toEqual([
      ['c', 'ab'],
      ['a', 'b'],
      ['b', 'c'],
      ['a', 'bc'],
      ['ab', 'c'],
    ]);
  });

  test('splits at code points, not UTF-16 units', () => {
    expect(
      bpeMergesFromScores([
        ['😀', 0],
        ['x', 0],
        ['😀x', -1],
      ]),
    ).toEqual([['😀', 'x']]);
  });

  test("mistral tokenizer.model gives exactly the 58,980 merges of Mistral's shipped tokenizer.json", () => {
    const spm = parseSentencePieceModel(readFileSync(join(MISTRAL, 'tokenizer.model')), 'tokenizer.model');
    const json = sentencePieceToTokenizerJson(spm, 'tokenizer.model') as {
      model: { merges: [string, string][]; vocab: Map<string, number> };
    };
    const shipped = JSON.parse(readFileSync(join(MISTRAL, 'tokenizer.json'), 'utf8')) as {
      model: { merges: string[]; vocab: Record<string, number> };
    };
    expect(json.model.merges.length).toBe(58980);
    expect(shipped.model.merges.length).toBe(58980);
    // The first differing merge, not a 58,980-line diff.
    const mine = json.model.merges.map(([l, r]) => `${l} ${r}`);
    const i = mine.findIndex((m, k) => m !== shipped.model.merges[k]);
    expect(i === -1 ? null : { index: i, mine: mine[i], shipped: shipped.model.merges[i] }).toBeNull();
    const vocab = Object.fromEntries(json.model.vocab);
    expect(Object.keys(vocab).length).toBe(32000);
    expect(Object.entries(shipped.model.vocab).filter(([p, id]) => vocab[p] !== id)).toEqual([]);
  });
});

describe('the converted tokenizer', () => {
  let tok512: SentencePieceModel;
  let converted512: MftTokenizer;
  let mistralSpm: SentencePieceModel;
  let mistralConverted: MftTokenizer;
  let mistralShipped: MftTokenizer;
  beforeAll(async () => {
    tok512 = parseSentencePieceModel(readFileSync(TOK512), TOK512);
    converted512 = await loadTokenizer(convertToDir(TOK512));
    mistralSpm = parseSentencePieceModel(readFileSync(join(MISTRAL, 'tokenizer.model')), 'tokenizer.model');
    mistralConverted = await loadTokenizer(convertToDir(join(MISTRAL, 'tokenizer.model')));
    mistralShipped = await loadTokenizer(MISTRAL);
  });

  test('the reference encoder agrees with real SentencePiece ids (expected_encodings spm_ids)', () => {
    const expected = JSON.parse(readFileSync(join(MISTRAL, 'expected_encodings.json'), 'utf8')) as {
      cases: { text: string; spm_ids: number[] }[];
    };
    const hello = expected.cases[0]!;
    expect(hello.text).toMatch(/^Hello world!/);
    expect(spmReferenceEncode(mistralSpm, hello.text)).toEqual(hello.spm_ids);
  });

  test('tok512: on single-spaced text the ids equal SentencePiece BPE', () => {
    for (const text of SINGLE_SPACED) {
      expect(converted512.encode(text, { addSpecialTokens: false })).toEqual(
        spmReferenceEncode(tok512, text),
      );
      expect(converted512.encode(text)).toEqual([1, ...spmReferenceEncode(tok512, text)]);
    }
  });

  test('mistral: on single-spaced text the ids equal SentencePiece BPE', () => {
    for (const text of SINGLE_SPACED) {
      expect(mistralConverted.encode(text, { addSpecialTokens: false })).toEqual(
        spmReferenceEncode(mistralSpm, text),
      );
    }
  });

  test("mistral: converted tokenizer.model encodes and decodes like Mistral's shipped tokenizer.json", () => {
    const texts = [
      ...SINGLE_SPACED,
      '    def fib(n):\n        return n if n < 2 else fib(n-1) + fib(n-2)\n',
      '  leading spaces,   runs   of spaces\t\ttabs\r\n',
      '<s>[INST] What is 2+2? [/INST]</s>',
      '👨‍👩‍👧‍👦 \u00a0 \uFEFF 1234567890',
    ];
    for (const text of texts) {
      for (const addSpecialTokens of [false, true]) {
        const ids = mistralShipped.encode(text, { addSpecialTokens });
        expect(mistralConverted.encode(text, { addSpecialTokens })).toEqual(ids);
        expect(mistralConverted.decode(ids)).toBe(mistralShipped.decode(ids));
      }
    }
  });

  test('the Rust tokenizers library loads the converted tokenizer.json and agrees', async () => {
    const dir = convertToDir(TOK512);
    const ref = rust.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    for (const text of [...SINGLE_SPACED, '  two  spaces\n\tand tabs', '<s>x</s>']) {
      for (const addSpecialTokens of [false, true]) {
        const want = (await ref.encode(text, null, { addSpecialTokens })).getIds();
        expect(converted512.encode(text, { addSpecialTokens })).toEqual(want);
        expect(converted512.decode(want)).toBe(await ref.decode(want, false));
      }
    }
  });

  test('whitespace is kept: runs of spaces and indentation round-trip exactly', () => {
    expect(converted512.encode('a  b', { addSpecialTokens: false })).not.toEqual(
      converted512.encode('a b', { addSpecialTokens: false }),
    );
    for (const text of ['def f():\n    return 1\n\n\tx  =  2', 'Once upon a time.\n\n  Indented.   ']) {
      expect(converted512.decode(converted512.encode(text), { skipSpecialTokens: true })).toBe(text);
    }
  });
});

describe('stringifyTokenizerJson', () => {
  test('a Map keeps its order, integer-like keys included; output parses back', () => {
    const text = stringifyTokenizerJson({
      vocab: new Map([
        ['b', 0],
        ['10', 1],
        ['2', 2],
      ]),
      list: [['x', 'y']],
      empty: {},
      none: null,
    });
    expect(text.indexOf('"b"')).toBeLessThan(text.indexOf('"10"'));
    expect(text.indexOf('"10"')).toBeLessThan(text.indexOf('"2"'));
    expect(JSON.parse(text)).toEqual({
      vocab: { b: 0, '10': 1, '2': 2 },
      list: [['x', 'y']],
      empty: {},
      none: null,
    });
    expect(text.endsWith('}\n')).toBe(true);
  });
});
