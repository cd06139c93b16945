import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildDataset, drawValidationRecords } from '../../src/data/build-dataset.js';
import type { DataConfig, RecipeFormat } from '../../src/data/types.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { MftError } from '../../src/util/index.js';
import { dataConfig, plainRecipe } from '../helpers/data-config.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { charIds, charTokenizer } from './char-tokenizer.js';

const FIXTURES = join(import.meta.dirname, '../fixtures');
let dir: string;
let n = 0;

beforeAll(() => {
  dir = makeTempDir('build');
});
afterAll(removeTempDirs);

function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

function jsonl(name: string, records: unknown[]): string {
  return file(name, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

function config(dataset: string[], over: Partial<DataConfig> & { format?: RecipeFormat } = {}): DataConfig {
  n += 1;
  const recipe = plainRecipe(over.format ?? 'text');
  return dataConfig({
    dataset,
    recipe,
    seed: 42,
    cache_dir: join(dir, `cache-${n}`),
    sequence_len: 16,
    ...over,
  });
}

function logger() {
  const lines: string[] = [];
  return { lines, log: (l: string) => lines.push(l) };
}

async function buildError(cfg: DataConfig, tok = charTokenizer()): Promise<string> {
  try {
    await buildDataset(cfg, tok, { log: () => {} });
  } catch (e) {
    if (e instanceof MftError) return e.message;
    throw e;
  }
  return 'no error';
}

describe('buildDataset', () => {
  test('text records: samples, token counts and packed rows', async () => {
    const words = ['a', 'bb', 'ccc', 'dddd', 'eeeee', 'ffffff'];
    const path = jsonl(
      'words.jsonl',
      words.map((text) => ({ text })),
    );
    const { lines, log } = logger();
    const data = await buildDataset(config([path]), charTokenizer(), { log });
    // Each sample: BOS + characters + EOS.
    const lengths = words.map((w) => w.length + 2);
    const total = lengths.reduce((a, b) => a + b, 0);
    expect(data.seqLen).toBe(16);
    expect(data.validation).toBeNull();
    expect(data.train.numSamples).toBe(6);
    expect(data.train.numTokens).toBe(total);
    expect(data.stats.train).toMatchObject({
      records: 6,
      samples: 6,
      tokens: total,
      // Every token but each sample's first is a target.
      trainedTokens: total - 6,
    });
    expect(data.stats.train.rows).toBe(Math.ceil(total / 16));
    expect(data.stats.train.packingEfficiency).toBeCloseTo(total / (16 * data.stats.train.rows), 12);
    // Every sample sits whole in one row.
    const found = Array.from({ length: data.train.numRows }, (_, i) => data.train.rowSamples(i)).flat();
    expect(found.sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(lines.join('\n')).toMatch(
      /data: train 6 records -> 6 samples, 33 tokens \(27 trained\) in 3 rows of 16/,
    );
    const ex = data.examples(2);
    expect(Array.from(ex[1]!.ids)).toEqual([1, ...charIds('bb'), 2]);
  });

  test('val_set_size: a fraction or a count of records, drawn by the seed', async () => {
    const path = jsonl(
      'many.jsonl',
      Array.from({ length: 40 }, (_, i) => ({ text: `record ${i}` })),
    );
    const frac = await buildDataset(config([path], { val_set_size: 0.25 }), charTokenizer(), {
      log: () => {},
    });
    expect(frac.stats.validationFrom).toBe('val_set_size');
    expect(frac.stats.validation!.records).toBe(10);
    expect(frac.stats.train.records).toBe(30);
    expect(frac.validation!.numSamples + frac.train.numSamples).toBe(40);
    const count = await buildDataset(config([path], { val_set_size: 3 }), charTokenizer(), { log: () => {} });
    expect(count.validation!.numSamples).toBe(3);
    // The draw is a function of (count, size, seed).
    expect(drawValidationRecords(40, 0.25, 42)).toEqual(drawValidationRecords(40, 0.25, 42));
    expect(drawValidationRecords(40, 0.25, 43)).not.toEqual(drawValidationRecords(40, 0.25, 42));
    expect(drawValidationRecords(40, 0.25, 42).size).toBe(10);
    expect(drawValidationRecords(5, 10, 1).size).toBe(4); // always leaves one for training
    const valTexts = (d: typeof frac) =>
      Array.from({ length: d.validation!.numRows }, (_, i) => d.validation!.row(i))
        .map((r) => Array.from(r.inputIds).join(','))
        .join('|');
    const again = await buildDataset(config([path], { val_set_size: 0.25 }), charTokenizer(), {
      log: () => {},
    });
    expect(valTexts(again)).toBe(valTexts(frac));
    const otherSeed = await buildDataset(config([path], { val_set_size: 0.25, seed: 7 }), charTokenizer(), {
      log: () => {},
    });
    expect(valTexts(otherSeed)).not.toBe(valTexts(frac));
  });

  test('validation files are used as they are; val_set_size is then not applied', async () => {
    const ds = join(dir, 'ds');
    mkdirSync(ds);
    writeFileSync(join(ds, 'train.jsonl'), '{"text": "t1"}\n{"text": "t2"}\n');
    writeFileSync(join(ds, 'validation.jsonl'), '{"text": "v1"}\n');
    const { lines, log } = logger();
    const data = await buildDataset(config([ds], { val_set_size: 0.5 }), charTokenizer(), { log });
    expect(data.stats.validationFrom).toBe('files');
    expect(data.train.numSamples).toBe(2);
    expect(data.validation!.numSamples).toBe(1);
    expect(Array.from(data.validation!.row(0).inputIds.subarray(0, 4))).toEqual([1, ...charIds('v1'), 2]);
    expect(lines).toContain('note: the dataset has validation files; val_set_size is not used');
  });

  test('sample_packing: false gives one sample per row', async () => {
    const path = jsonl('unpacked.jsonl', [{ text: 'a' }, { text: 'b' }, { text: 'c' }]);
    const data = await buildDataset(config([path], { sample_packing: false }), charTokenizer(), {
      log: () => {},
    });
    expect(data.train.numRows).toBe(3);
    expect(data.stats.train.packingEfficiency).toBeCloseTo(9 / 48, 12);
  });

  test('truncation: split, truncate and drop are counted', async () => {
    const path = jsonl('long.jsonl', [{ text: 'x'.repeat(30) }, { text: 'short' }]);
    // 'x' * 30 -> 32 tokens with BOS and EOS.
    const split = await buildDataset(config([path], { truncation: 'split' }), charTokenizer(), {
      log: () => {},
    });
    expect(split.train.numSamples).toBe(3);
    expect(split.stats.truncated).toBe(1);
    expect(split.train.numTokens).toBe(32 + 7);
    const cut = await buildDataset(config([path], { truncation: 'truncate' }), charTokenizer(), {
      log: () => {},
    });
    expect(cut.train.numSamples).toBe(2);
    expect(cut.train.numTokens).toBe(16 + 7);
    const { lines, log } = logger();
    const drop = await buildDataset(config([path], { truncation: 'drop' }), charTokenizer(), { log });
    expect(drop.train.numSamples).toBe(1);
    expect(drop.stats.dropped).toBe(1);
    expect(lines).toContain('data: 0 samples cut to 16 tokens, 1 dropped as too long');
    const allLong = jsonl('all-long.jsonl', [{ text: 'y'.repeat(40) }]);
    expect(await buildError(config([allLong], { truncation: 'drop' }))).toMatch(
      /no training samples: all 1 samples were longer than sequence_len 16 and dropped/,
    );
  });

  test('fim_rate with a tokenizer without FIM tokens is an error', async () => {
    const path = jsonl('code.jsonl', [{ text: 'let x = 1;' }]);
    expect(await buildError(config([path], { format: 'code_completion', fim_rate: 0.5 }))).toMatch(
      /^fim_rate: fill-in-the-middle asked for \(fim_rate: 0.5\) but the tokenizer in .* has no FIM tokens/,
    );
    const withFim = await buildDataset(
      config([path], { format: 'code_completion', fim_rate: 1 }),
      charTokenizer({ fim: true }),
      { log: () => {} },
    );
    const ids = Array.from(withFim.examples(1)[0]!.ids);
    expect([ids[0], ids[1]]).toEqual([1, 3]); // BOS, <fim_prefix>
    expect(ids).toContain(4);
    expect(ids).toContain(5);
  });
});

describe('an empty dataset', () => {
  test('an empty or blank-only file is named as holding no records, with val_set_size or without', async () => {
    for (const [name, content] of [
      ['empty.jsonl', ''],
      ['blank.jsonl', '\n  \n\n'],
    ] as const) {
      const path = file(name, content);
      for (const val_set_size of [0.1, 0]) {
        const message = await buildError(config([path], { val_set_size }));
        expect(message).toMatch(
          new RegExp(
            `${name}: holds no records \\(the file is empty or only blank lines\\) \\(fix: add records`,
          ),
        );
        expect(message).not.toContain('val_set_size');
      }
    }
  });
});

describe('bad records', () => {
  const cases: { name: string; format?: RecipeFormat; lines: (string | Buffer)[]; error: string }[] = [
    { name: 'invalid JSON', lines: ['{"text": "ok"}', '{"text": "a",}'], error: ':2: invalid JSON: ' },
    {
      name: 'missing field',
      lines: ['{"text": "ok"}', '{"body": "a"}'],
      error: ':2: text: missing field (the record has: body)',
    },
    {
      name: 'wrong type',
      lines: ['{"text": "ok"}', '{"text": "ok"}', '{"text": 42}'],
      error: ':3: text: expected a string, got 42',
    },
    { name: 'empty text', lines: ['{"text": "ok"}', '{"text": ""}'], error: ':2: text: empty text' },
    {
      name: 'unknown role',
      format: 'instruct',
      lines: [
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
        '{"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}',
      ],
      error:
        ':2: messages[1].role: unknown role "bot" (fix: use one of system, user, assistant; or set on_bad_record: skip',
    },
    {
      name: 'invalid UTF-8',
      lines: [
        '{"text": "ok"}',
        Buffer.concat([Buffer.from('{"text": "'), Buffer.from([0xff]), Buffer.from('"}')]),
      ],
      error: ':2: invalid UTF-8 (byte 0xff at byte 11 of the line)',
    },
  ];

  for (const c of cases) {
    test(`${c.name}: on_bad_record error names the file and line, skip counts it`, async () => {
      const path = file(
        `bad-${c.name.replace(/ /g, '-')}.jsonl`,
        Buffer.concat(c.lines.map((l) => Buffer.concat([Buffer.from(l), Buffer.from('\n')]))),
      );
      const message = await buildError(config([path], { format: c.format, sequence_len: 256 }));
      expect(message.startsWith(`${path}${c.error}`)).toBe(true);
      expect(message).toMatch(/on_bad_record: skip to leave out such records\)$/);
      const { lines, log } = logger();
      const cfg = config([path], { format: c.format, on_bad_record: 'skip', sequence_len: 256 });
      const data = await buildDataset(cfg, charTokenizer(), {
        log,
      });
      expect(data.stats.skippedRecords).toBe(1);
      expect(data.stats.skippedExamples[0]!.startsWith(`${path}${c.error.replace(/ \(fix: .*/, '')}`)).toBe(
        true,
      );
      expect(data.train.numSamples).toBe(c.lines.length - 1);
      expect(lines.some((l) => l.startsWith('data: skipped 1 bad records, first: '))).toBe(true);
    });
  }

  test('an empty dataset after skipping is an error', async () => {
    const path = jsonl('all-bad.jsonl', [{ text: 1 }, { text: 2 }]);
    expect(await buildError(config([path], { on_bad_record: 'skip' }))).toMatch(
      new RegExp(
        `^dataset: no training samples: all 2 records were bad \\(first: ${path}:1: text: expected a string, got 1\\)`,
      ),
    );
  });

  test('rows of Arrow and Parquet files are named by row', async () => {
    const path = join(FIXTURES, 'data/bigint.parquet');
    expect(await buildError(config([path]))).toMatch(
      /bigint\.parquet row 1: label: integer 1152921504606846976 is too large/,
    );
  });
});

describe('the cache', () => {
  test('a second build loads the cache; the rows are the same', async () => {
    const path = jsonl(
      'cached.jsonl',
      Array.from({ length: 20 }, (_, i) => ({ text: `sample number ${i}` })),
    );
    const cfg = config([path], { val_set_size: 0.2 });
    const first = await buildDataset(cfg, charTokenizer(), { log: () => {} });
    const { lines, log } = logger();
    const second = await buildDataset(cfg, charTokenizer(), { log });
    expect(lines[0]).toMatch(/^data: loaded from cache .*\.mftdata$/);
    expect(second.cacheKey).toBe(first.cacheKey);
    expect(second.stats).toEqual(first.stats);
    expect(second.train.numRows).toBe(first.train.numRows);
    for (let i = 0; i < first.train.numRows; i++) expect(second.train.row(i)).toEqual(first.train.row(i));
    expect(second.validation!.row(0)).toEqual(first.validation!.row(0));
    expect(second.examples(3).map((s) => Array.from(s.ids))).toEqual(
      first.examples(3).map((s) => Array.from(s.ids)),
    );
    // Any data setting or the data itself changes the key.
    const other = await buildDataset({ ...cfg, sequence_len: 32 }, charTokenizer(), { log: () => {} });
    expect(other.cacheKey).not.toBe(first.cacheKey);
    // max_record_bytes came later: at its default the key (a run's data_hash) is the one from before.
    const quiet = { log: () => {} };
    const atDefault = await buildDataset({ ...cfg, max_record_bytes: 8 * 2 ** 20 }, charTokenizer(), quiet);
    expect(atDefault.cacheKey).toBe(first.cacheKey);
    const smaller = await buildDataset({ ...cfg, max_record_bytes: 1000 }, charTokenizer(), quiet);
    expect(smaller.cacheKey).not.toBe(first.cacheKey);
    writeFileSync(path, readFileSync(path, 'utf8') + '{"text": "one more"}\n');
    const edited = await buildDataset(cfg, charTokenizer(), { log: () => {} });
    expect(edited.cacheKey).not.toBe(first.cacheKey);
    expect(edited.stats.records).toBe(21);
  });

  test('a truncated or foreign cache file is rebuilt, not trusted', async () => {
    const path = jsonl('corrupt.jsonl', [{ text: 'abc' }, { text: 'defg' }]);
    const cfg = config([path]);
    const first = await buildDataset(cfg, charTokenizer(), { log: () => {} });
    const cacheFile = join(cfg.cache_dir, 'data', `${first.cacheKey}.mftdata`);
    const bytes = readFileSync(cacheFile);
    for (const broken of [bytes.subarray(0, bytes.length - 8), Buffer.from('not a cache file at all')]) {
      writeFileSync(cacheFile, broken);
      const { lines, log } = logger();
      const again = await buildDataset(cfg, charTokenizer(), { log });
      expect(lines.some((l) => l.includes('loaded from cache'))).toBe(false);
      expect(again.train.row(0)).toEqual(first.train.row(0));
    }
    expect(readFileSync(cacheFile)).toEqual(bytes);
  });

  test('a tokenizer change invalidates the cache (no stale tokens)', async () => {
    const tokDir = join(dir, 'tok');
    mkdirSync(tokDir);
    const gpt2 = join(FIXTURES, 'tokenizers/gpt2');
    copyFileSync(join(gpt2, 'tokenizer.json'), join(tokDir, 'tokenizer.json'));
    const tokConfig = JSON.parse(readFileSync(join(gpt2, 'tokenizer_config.json'), 'utf8'));
    writeFileSync(join(tokDir, 'tokenizer_config.json'), JSON.stringify(tokConfig));
    const path = jsonl('tok-change.jsonl', [{ text: 'Hello world' }]);
    const cfg = config([path], { sequence_len: 8 });
    const before = await buildDataset(cfg, await loadTokenizer(tokDir), { log: () => {} });
    expect(Array.from(before.train.row(0).inputIds.subarray(0, 3))).toEqual([15496, 995, 50256]);
    // Same folder, same tokenizer.json: tokenizer_config.json now asks for BOS.
    writeFileSync(
      join(tokDir, 'tokenizer_config.json'),
      JSON.stringify({ ...tokConfig, add_bos_token: true }),
    );
    const { lines, log } = logger();
    const after = await buildDataset(cfg, await loadTokenizer(tokDir), { log });
    expect(lines.some((l) => l.includes('loaded from cache'))).toBe(false);
    expect(after.cacheKey).not.toBe(before.cacheKey);
    expect(Array.from(after.train.row(0).inputIds.subarray(0, 4))).toEqual([50256, 15496, 995, 50256]);
  });

  test('an unwritable cache_dir falls back to a temporary folder with a warning', async () => {
    const blocker = file('not-a-folder', 'x');
    const path = jsonl('fallback.jsonl', [{ text: 'abc' }]);
    const { lines, log } = logger();
    const data = await buildDataset(config([path], { cache_dir: join(blocker, 'cache') }), charTokenizer(), {
      log,
    });
    expect(data.train.numSamples).toBe(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^warning: cache_dir ${blocker}/cache is not writable \\(ENOTDIR\\); caching the dataset in .*mft-cache/data instead$`,
      ),
    );
  });
});
