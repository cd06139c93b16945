import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { MftError, Rng } from '../../src/util/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

// The official Rust implementation (devDependency), the reference for every comparison here.
const rust = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');

const FIXTURES = 'test/fixtures/tokenizers';
const NAMES = ['gpt2', 'mistral-7b-v0.1', 'tinyllama', 'smollm2-135m-instruct'] as const;

interface Expected {
  cases: { text: string; ids_no_special: number[]; ids_with_special: number[] }[];
}

/** Hand-picked hard cases plus seeded random concatenations of awkward pieces. */
function corpus(): string[] {
  const texts = [
    'Hello world! Once upon a time, there was a little girl named Lily.',
    '',
    ' ',
    '   ',
    '\n\n',
    '\t\tindented with tabs',
    'a  b   c    d     e',
    '    def f(x):\n        return x**2  # square\n\n\nclass A:\n\tpass\n',
    'fn main() { println!("{}", 1 + 2); } // rust\r\n',
    '中文字符测试，日本語のテキスト、한국어 문장',
    '😀🤖👍🏽 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵',
    '<s>hello</s> <unk> [INST] x [/INST]',
    '<|endoftext|>abc<|im_start|>system\nYou are<|im_end|>\n',
    'ééé café naïve Ωmega straße',
    '12345678901234567890 3.14159 1e-5 0x1F',
    'x² + y³ = ①②③ ٣٤ ½',
    '\u00a0no-break\u200bzero-width\u2028line-sep',
    'trailing spaces   ',
    'x<s>',
    '</s>x',
    ' <s> ',
    'السلام عليكم',
    'Привет, мир!',
    'a\u0301 ﬁ ligature',
    '\u{10FFFF}\u{1F600}',
  ];
  const pieces = [
    'a',
    'b',
    ' ',
    '  ',
    '\n',
    '\t',
    'é',
    '中',
    '😀',
    '<s>',
    '</s>',
    '<unk>',
    '<|endoftext|>',
    '<|im_start|>',
    '1',
    '23',
    '.',
    ',',
    '(',
    ')',
    '{',
    '}',
    '▁',
    'Ġ',
    '\u00a0',
    'the',
    ' the',
    '    ',
    '²',
    "'s",
    "n't",
    'HTTP',
    '\r\n',
  ];
  const rng = new Rng(1234);
  for (let i = 0; i < 200; i++) {
    let t = '';
    const n = 1 + rng.int(12);
    for (let j = 0; j < n; j++) t += pieces[rng.int(pieces.length)];
    texts.push(t);
  }
  return texts;
}

/** Where `loadTokenizer(dir)` encodes or decodes `texts` unlike the Rust library (none = agreement). */
async function rustMismatches(dir: string, texts: string[]): Promise<string[]> {
  const tok = await loadTokenizer(dir);
  const ref = rust.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
  const mismatches: string[] = [];
  for (const text of texts) {
    for (const special of [false, true]) {
      const want = (await ref.encode(text, null, { addSpecialTokens: special })).getIds();
      const got = tok.encode(text, { addSpecialTokens: special });
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        mismatches.push(`encode ${JSON.stringify(text)} special=${special}: ${got} vs ${want}`);
      }
      for (const skip of [false, true]) {
        const wantText = want.length === 0 ? '' : await ref.decode(want, skip);
        const gotText = tok.decode(want, { skipSpecialTokens: skip });
        if (gotText !== wantText) {
          mismatches.push(`decode ${JSON.stringify(text)} skip=${skip}: ${JSON.stringify(gotText)}`);
        }
      }
    }
  }
  return mismatches;
}

const tempDir = () => makeTempDir('tok');
afterAll(removeTempDirs);

describe('loadTokenizer on real tokenizers', () => {
  for (const name of NAMES) {
    test(`${name}: reproduces expected_encodings.json (with and without special tokens)`, async () => {
      const dir = join(FIXTURES, name);
      const tok = await loadTokenizer(dir);
      const expected = JSON.parse(readFileSync(join(dir, 'expected_encodings.json'), 'utf8')) as Expected;
      expect(expected.cases.length).toBeGreaterThan(0);
      for (const c of expected.cases) {
        expect(tok.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids_no_special);
        expect(tok.encode(c.text)).toEqual(c.ids_with_special);
      }
    });

    test(`${name}: encodes and decodes like the Rust tokenizers library on varied text`, async () => {
      expect(await rustMismatches(join(FIXTURES, name), corpus())).toEqual([]);
    });
  }

  // Llama-3 and Qwen2 split text with one regex using (?i:...) groups and Unicode classes before
  // byte-level BPE (Qwen2 also NFC-normalizes). No such tokenizer is in the fixtures, so their
  // pre-tokenizers (patterns as in their tokenizer.json files) go on smollm2's byte-level vocabulary.
  const SPLIT_PATTERNS = {
    'llama-3': String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    qwen2: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  };
  for (const [family, pattern] of Object.entries(SPLIT_PATTERNS)) {
    test(`${family} regex pre-tokenizer: encodes and decodes like the Rust tokenizers library`, async () => {
      const src = join(FIXTURES, 'smollm2-135m-instruct');
      const dir = tempDir();
      const json = JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf8'));
      json.normalizer = family === 'qwen2' ? { type: 'NFC' } : null;
      json.pre_tokenizer = {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      };
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
      copyFileSync(join(src, 'config.json'), join(dir, 'config.json')); // its BOS / EOS ids
      const contractions = [
        "I'M",
        "DON'T go, she'S",
        "WE'LL we'Ve I'D",
        "it’s 's 'S",
        '1234567 ٢٠٢٤ e\u0301',
      ];
      expect(await rustMismatches(dir, [...corpus(), ...contractions])).toEqual([]);
    });
  }

  test('Digits pre-tokenizer splits every Unicode number like Rust (², ①, Arabic-Indic digits)', async () => {
    const dir = join(FIXTURES, 'smollm2-135m-instruct');
    const tok = await loadTokenizer(dir);
    const ref = rust.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    for (const text of ['x² ①②③', 'year ٢٠٢٤', 'Ⅻ½']) {
      const want = (await ref.encode(text, null, { addSpecialTokens: false })).getIds();
      expect(tok.encode(text, { addSpecialTokens: false })).toEqual(want);
    }
  });

  test('byte-fallback decoding matches Rust: a BOM is kept, invalid UTF-8 gives one U+FFFD per byte', async () => {
    const dir = join(FIXTURES, 'mistral-7b-v0.1');
    const tok = await loadTokenizer(dir);
    const ref = rust.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    const byte = (b: number) => tok.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!;
    const hello = tok.encode('Hello', { addSpecialTokens: false });
    const bytes = (...bs: number[]) => bs.map(byte);
    const cases = [
      [...bytes(0xef, 0xbb, 0xbf), ...hello],
      [...hello, ...bytes(0xe2, 0x82)],
      [...bytes(0x80), ...hello, ...bytes(0xf0, 0x9f, 0xa4)],
      bytes(0xc3, 0xa9),
    ];
    expect(tok.decode(cases[0]!)).toBe('\uFEFF Hello');
    expect(tok.decode(cases[1]!)).toBe('Hello\uFFFD\uFFFD');
    for (const ids of cases) expect(tok.decode(ids)).toBe(await ref.decode(ids, false));
  });

  test('mistral: special ids, flags and vocabulary size', async () => {
    const tok = await loadTokenizer(join(FIXTURES, 'mistral-7b-v0.1'));
    expect(tok.vocabSize).toBe(32000);
    expect([tok.bosId, tok.eosId, tok.padId]).toEqual([1, 2, null]);
    expect([tok.addsBos, tok.addsEos]).toEqual([true, false]);
    expect(tok.chatTemplate).toBeNull();
    expect(tok.tokenToId('<s>')).toBe(1);
    expect(tok.tokenToId('▁Hello')).toBe(22557);
    expect(tok.tokenToId('no such token')).toBeNull();
    expect(tok.dir).toBe(join(process.cwd(), FIXTURES, 'mistral-7b-v0.1'));
  });

  test('tinyllama: chat template and pad token from tokenizer_config.json', async () => {
    const tok = await loadTokenizer(join(FIXTURES, 'tinyllama'));
    expect(tok.chatTemplate).toMatch(/^\{% for message in messages %\}/);
    expect(tok.padId).toBe(2);
  });

  test('gpt2: bos = eos = <|endoftext|>, and encode adds nothing', async () => {
    const tok = await loadTokenizer(join(FIXTURES, 'gpt2'));
    expect([tok.bosId, tok.eosId, tok.addsBos, tok.addsEos]).toEqual([50256, 50256, false, false]);
    expect(tok.vocabSize).toBe(50257);
    expect(tok.encode('Hello world')).toEqual([15496, 995]);
  });

  test('smollm2: no tokenizer_config.json, bos/eos come from config.json', async () => {
    const tok = await loadTokenizer(join(FIXTURES, 'smollm2-135m-instruct'));
    expect([tok.bosId, tok.eosId, tok.padId]).toEqual([1, 2, null]);
    expect([tok.addsBos, tok.addsEos]).toEqual([false, false]);
  });
});

describe('decode', () => {
  test('empty list, skipped specials, ids outside the vocabulary', async () => {
    const tok = await loadTokenizer(join(FIXTURES, 'mistral-7b-v0.1'));
    expect(tok.decode([])).toBe('');
    const ids = tok.encode('Hello world');
    expect(ids[0]).toBe(1);
    expect(tok.decode(ids)).toBe('<s> Hello world');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('Hello world');
    expect(tok.decode([...ids, 40000, 99999], { skipSpecialTokens: true })).toBe('Hello world');
  });

  test('never applies clean_up_tokenization_spaces (gpt2 asks for it)', async () => {
    const tok = await loadTokenizer(join(FIXTURES, 'gpt2'));
    for (const text of ['a , b . c ?', "don 't", 'x = f(a , b)']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });
});

describe('tokenizer_config.json flags and files', () => {
  /** A folder with mistral's tokenizer.json and the given tokenizer_config.json. */
  function mistralWith(config: object | null, extra: Record<string, string> = {}): string {
    const d = tempDir();
    copyFileSync(join(FIXTURES, 'mistral-7b-v0.1', 'tokenizer.json'), join(d, 'tokenizer.json'));
    if (config) writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(config));
    for (const [f, text] of Object.entries(extra)) writeFileSync(join(d, f), text);
    return d;
  }
  const text = 'The cat sat.';

  test('a folder with only tokenizer.json is enough', async () => {
    const tok = await loadTokenizer(mistralWith(null));
    // No tokenizer_config.json and no config.json: no named bos, so nothing is added on top.
    expect(tok.bosId).toBeNull();
    expect(tok.encode(text, { addSpecialTokens: false }).length).toBeGreaterThan(0);
  });

  test('add_bos_token false removes BOS; add_eos_token true appends EOS', async () => {
    const plain = await loadTokenizer(mistralWith({ bos_token: '<s>', eos_token: '</s>' }));
    const bare = plain.encode(text, { addSpecialTokens: false });
    expect(plain.encode(text)).toEqual([1, ...bare]);

    const noBos = await loadTokenizer(
      mistralWith({ bos_token: '<s>', eos_token: '</s>', add_bos_token: false }),
    );
    expect(noBos.addsBos).toBe(false);
    expect(noBos.encode(text)).toEqual(bare);

    const eos = await loadTokenizer(
      mistralWith({
        bos_token: { content: '<s>', __type: 'AddedToken' },
        eos_token: '</s>',
        add_eos_token: true,
      }),
    );
    expect([eos.addsBos, eos.addsEos]).toEqual([true, true]);
    expect(eos.encode(text)).toEqual([1, ...bare, 2]);
    expect(eos.encode(text, { addSpecialTokens: false })).toEqual(bare);
  });

  test('chat_template: list form picks "default"; chat_template.jinja file is read', async () => {
    const list = await loadTokenizer(
      mistralWith({
        chat_template: [
          { name: 'tool_use', template: 'T' },
          { name: 'default', template: 'D' },
        ],
      }),
    );
    expect(list.chatTemplate).toBe('D');
    const file = await loadTokenizer(mistralWith({}, { 'chat_template.jinja': '{{ messages }}' }));
    expect(file.chatTemplate).toBe('{{ messages }}');
  });
});

describe('errors name the place and the fix', () => {
  async function loadError(dir: string): Promise<MftError> {
    try {
      await loadTokenizer(dir);
    } catch (e) {
      if (e instanceof MftError) return e;
      throw e;
    }
    throw new Error('expected an MftError');
  }

  test('missing folder', async () => {
    const e = await loadError('/nonexistent/model');
    expect(e.message).toMatch(/\/nonexistent\/model: model folder does not exist/);
  });

  test('folder without tokenizer.json names the folder', async () => {
    const d = tempDir();
    const e = await loadError(d);
    expect(e.message).toContain(`${d}: no tokenizer.json in this folder`);
    expect(e.problems[0]!.fix).toMatch(/mft convert llama2c/);
  });

  test('invalid JSON names the file', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'tokenizer.json'), '{"model": ');
    const e = await loadError(d);
    expect(e.message).toContain(`${join(d, 'tokenizer.json')}: not valid JSON`);
  });

  test('an unusable tokenizer.json names the file', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'tokenizer.json'), '{"model": {"type": "NoSuchModel"}}');
    const e = await loadError(d);
    expect(e.message).toContain(`${join(d, 'tokenizer.json')}: cannot build the tokenizer`);
  });

  test('a bos_token that is not in the vocabulary names tokenizer_config.json', async () => {
    const d = tempDir();
    copyFileSync(join(FIXTURES, 'mistral-7b-v0.1', 'tokenizer.json'), join(d, 'tokenizer.json'));
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<bos>' }));
    const e = await loadError(d);
    expect(e.message).toContain('tokenizer_config.json: bos_token "<bos>" is not a token of tokenizer.json');
  });
});
