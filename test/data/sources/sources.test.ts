import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  readRecords,
  resolveDataset,
  type SourceFile,
  type SourceRecord,
} from '../../../src/data/sources/index.js';
import { firstInvalidUtf8 } from '../../../src/data/sources/jsonl.js';
import { displayPath } from '../../../src/util/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp-dir.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/data');
let dir: string;

beforeAll(() => {
  dir = makeTempDir('sources');
});
afterAll(removeTempDirs);

async function collect(file: SourceFile): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of readRecords(file)) out.push(r);
  return out;
}

function errorsOf(rs: SourceRecord[]): string[] {
  return rs.filter((r) => !r.ok).map((r) => (r.ok ? '' : `${r.where}: ${r.error.message}`));
}

describe('JSON Lines', () => {
  test('reads objects line by line, skipping blank lines, with CRLF and .gz', async () => {
    const text = '{"text": "a"}\r\n\n{"text": "b", "n": 2}\n   \n{"text": "c"}';
    const plain = join(dir, 'a.jsonl');
    writeFileSync(plain, text);
    const gz = join(dir, 'a.jsonl.gz');
    writeFileSync(gz, gzipSync(Buffer.from(text)));
    for (const path of [plain, gz]) {
      const rs = await collect({ path, kind: 'jsonl' });
      expect(rs.map((r) => (r.ok ? r.value : null))).toEqual([
        { text: 'a' },
        { text: 'b', n: 2 },
        { text: 'c' },
      ]);
      expect(rs.map((r) => r.where)).toEqual([1, 3, 5].map((l) => `${displayPath(path)}:${l}`));
    }
  });

  test('invalid JSON, a non-object and invalid UTF-8 are record errors at their line', async () => {
    const path = join(dir, 'bad.jsonl');
    const bytes = Buffer.concat([
      Buffer.from('{"text": "ok"}\n{"text": oops}\n[1, 2]\n{"text": "'),
      Buffer.from([0xc3, 0x28]), // a 2-byte lead followed by "(": invalid
      Buffer.from('"}\n{"text": "caf\u00e9"}\n'),
    ]);
    writeFileSync(path, bytes);
    const rs = await collect({ path, kind: 'jsonl' });
    expect(rs.filter((r) => r.ok).map((r) => (r.ok ? r.value.text : ''))).toEqual(['ok', 'café']);
    const errors = errorsOf(rs);
    const where = displayPath(path);
    expect(errors[0]).toMatch(new RegExp(`^${where}:2: invalid JSON: `));
    expect(errors[1]).toBe(`${where}:3: expected a JSON object, got an array`);
    expect(errors[2]).toBe(`${where}:4: invalid UTF-8 (byte 0x28 at byte 12 of the line)`);
  });

  test('lines longer than a read chunk are joined', async () => {
    const long = 'x'.repeat(3 * (1 << 20) + 17);
    const path = join(dir, 'long.jsonl');
    writeFileSync(path, `{"text": "${long}"}\n{"text": "short"}\n`);
    const rs = await collect({ path, kind: 'jsonl' });
    expect(rs.map((r) => (r.ok ? (r.value.text as string).length : -1))).toEqual([long.length, 5]);
  });

  test('firstInvalidUtf8 finds overlongs, surrogates and truncated sequences', () => {
    const at = (bytes: number[]) => firstInvalidUtf8(new Uint8Array(bytes));
    expect(at([0x61, 0xe2, 0x82, 0xac])).toBe(-1); // "a€"
    expect(at([0xf0, 0x9f, 0x98, 0x80])).toBe(-1); // U+1F600
    expect(at([0xc0, 0xaf])).toBe(0); // overlong "/"
    expect(at([0x61, 0xed, 0xa0, 0x80])).toBe(2); // UTF-16 surrogate D800: bad second byte
    expect(at([0x61, 0x62, 0xe2, 0x82])).toBe(2); // cut short
    expect(at([0xff])).toBe(0);
  });
});

describe('.json arrays', () => {
  test('streams the elements of a top-level array, strings with brackets and escapes included', async () => {
    const records = [
      { text: 'a [tricky] {string}', n: 1 },
      { text: 'quote " and backslash \\ and ]', nested: { list: [1, [2, 3]], o: {} } },
      { text: 'line\nbreak', uni: 'é😀' },
    ];
    const path = join(dir, 'arr.json');
    writeFileSync(path, `[\n  ${records.map((r) => JSON.stringify(r)).join(',\n  ')}\n]\n`);
    const rs = await collect({ path, kind: 'json' });
    expect(rs.map((r) => (r.ok ? r.value : null))).toEqual(records);
    expect(rs.map((r) => r.where)).toEqual([2, 3, 4].map((l) => `${displayPath(path)}:${l}`));
  });

  test('elements spanning read chunks; bad elements are errors and the rest still reads', async () => {
    const big = 'y'.repeat((1 << 20) + 5);
    const path = join(dir, 'big.json');
    writeFileSync(path, `[{"text": "${big}"}, 42, {"text": bad}, {"text": "after"}]`);
    const rs = await collect({ path, kind: 'json' });
    expect(rs.length).toBe(4);
    expect(rs[0]!.ok && (rs[0]!.value.text as string).length).toBe(big.length);
    expect(errorsOf(rs).map((e) => e.replace(/^.*?:1: /, ''))).toEqual([
      'expected a JSON object, got 42',
      expect.stringMatching(/^invalid JSON: /),
    ]);
    expect(rs[3]!.ok && rs[3]!.value).toEqual({ text: 'after' });
  });

  test('a .json file of JSON Lines is read as JSON Lines; a truncated array is an error', async () => {
    const lines = join(dir, 'lines.json');
    writeFileSync(lines, '{"text": "a"}\n{"text": "b"}\n');
    expect((await collect({ path: lines, kind: 'json' })).map((r) => r.ok && r.value.text)).toEqual([
      'a',
      'b',
    ]);
    const cut = join(dir, 'cut.json');
    writeFileSync(cut, '[{"text": "a"},\n {"text": "b"');
    const rs = await collect({ path: cut, kind: 'json' });
    expect(errorsOf(rs)).toEqual([`${displayPath(cut)}:2: the file ends inside this record`]);
    const scalar = join(dir, 'scalar.json');
    writeFileSync(scalar, '"just a string"');
    expect(errorsOf(await collect({ path: scalar, kind: 'json' }))[0]).toMatch(
      /expected "\[" at the start of the file/,
    );
  });
});

describe('Arrow', () => {
  test('a datasets save_to_disk shard: 2872 records, int64 labels as numbers', async () => {
    const path = join(FIXTURES, 'synthetic-sensitive-hf/data-00000-of-00001.arrow');
    const rs = await collect({ path, kind: 'arrow' });
    expect(rs.length).toBe(2872);
    expect(rs.every((r) => r.ok)).toBe(true);
    const first = rs[0]!.ok ? rs[0]!.value : {};
    expect(Object.keys(first)).toEqual(['text', 'label']);
    expect(typeof first.text).toBe('string');
    expect(first.label).toBe(0);
    const labels = new Set(rs.map((r) => (r.ok ? r.value.label : null)));
    expect([...labels].every((l) => typeof l === 'number')).toBe(true);
    expect(rs[2871]!.where).toBe(`${displayPath(path)} row 2871`);
  });

  test('nested struct and list-of-list columns become plain objects and arrays', async () => {
    const path = join(FIXTURES, 'raft-arrow/data-00000-of-00001.arrow');
    const rs = await collect({ path, kind: 'arrow' });
    expect(rs.length).toBe(263);
    const r = rs[0]!.ok ? rs[0]!.value : {};
    expect(r.id).toBe('seed_task_0');
    const context = r.context as { sentences: string[][]; title: string[][] };
    expect(Object.keys(context).sort()).toEqual(['sentences', 'title']);
    expect(Array.isArray(context.sentences)).toBe(true);
    expect(Array.isArray(context.sentences[0])).toBe(true);
    expect(typeof context.sentences[0]![0]).toBe('string');
    expect((r.instruction as string).startsWith('<DOCUMENT>')).toBe(true);
  });

  test('an IPC file (with footer) with a dictionary-encoded column and list cells', async () => {
    const rs = await collect({ path: join(FIXTURES, 'table.arrow'), kind: 'arrow' });
    expect(rs.map((r) => (r.ok ? r.value : null))).toEqual([
      { text: 'one', source: 'a', n: 1, tags: ['x'] },
      { text: 'two', source: 'b', n: 2, tags: ['y', 'z'] },
      { text: 'three', source: 'a', n: 3, tags: [] },
    ]);
  });

  test('a file that is not Arrow is an error naming it', async () => {
    const path = join(dir, 'not.arrow');
    writeFileSync(path, 'hello, not arrow at all');
    await expect(collect({ path, kind: 'arrow' })).rejects.toThrow(/not an Arrow IPC file or stream/);
  });
});

describe('Parquet', () => {
  test('snappy, list of structs with dictionary-encoded roles, two row groups', async () => {
    const rs = await collect({ path: join(FIXTURES, 'chat.snappy.parquet'), kind: 'parquet' });
    expect(rs.length).toBe(4);
    expect(rs[1]!.ok && rs[1]!.value).toEqual({
      id: 11,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Capital of France?' },
        { role: 'assistant', content: 'Paris' },
      ],
    });
    expect(rs[3]!.where).toMatch(/chat\.snappy\.parquet row 3$/);
  });

  test('zstd, three row groups, int64 as numbers', async () => {
    const rs = await collect({ path: join(FIXTURES, 'text.zstd.parquet'), kind: 'parquet' });
    expect(rs.map((r) => (r.ok ? r.value : null))).toEqual([
      { text: 'alpha beta', label: 0 },
      { text: 'gamma delta', label: 1 },
      { text: 'epsilon', label: 0 },
      { text: 'zeta eta theta', label: 1 },
      { text: 'iota', label: 1 },
    ]);
  });

  test('an int64 beyond 2^53 is a record error naming the column', async () => {
    const rs = await collect({ path: join(FIXTURES, 'bigint.parquet'), kind: 'parquet' });
    expect(rs[0]!.ok).toBe(true);
    expect(errorsOf(rs)).toEqual([
      `${displayPath(join(FIXTURES, 'bigint.parquet'))} row 1: label: integer 1152921504606846976 is too large for a JS number (beyond 2^53 - 1)`,
    ]);
  });
});

describe('progress reporting', () => {
  test('onProgress sees every byte and no record is lost, for every reader', async () => {
    const files: SourceFile[] = [
      { path: join(FIXTURES, 'synthetic-sensitive-hf/data-00000-of-00001.arrow'), kind: 'arrow' },
      { path: join(FIXTURES, 'text.zstd.parquet'), kind: 'parquet' },
    ];
    const lines = join(dir, 'progress.jsonl');
    writeFileSync(lines, '{"text": "a"}\n'.repeat(1000));
    const gz = join(dir, 'progress.jsonl.gz');
    writeFileSync(gz, gzipSync(Buffer.from('{"text": "a"}\n'.repeat(1000))));
    const arr = join(dir, 'progress.json');
    writeFileSync(arr, `[${Array(1000).fill('{"text": "a"}').join(',')}]`);
    files.push({ path: lines, kind: 'jsonl' }, { path: gz, kind: 'jsonl' }, { path: arr, kind: 'json' });
    const expected = [2872, 5, 1000, 1000, 1000];
    for (const [i, f] of files.entries()) {
      let last = 0;
      let count = 0;
      for await (const r of readRecords(f, { onProgress: (b) => (last = b) })) if (r.ok) count += 1;
      expect(count).toBe(expected[i]);
      expect(last).toBe(statSync(f.path).size);
    }
  });
});

describe('resolveDataset', () => {
  test('a dataset folder with train and validation files (shards included)', () => {
    const d = join(dir, 'ds');
    mkdirSync(d);
    for (const f of [
      'train-00001-of-00002.jsonl',
      'train-00000-of-00002.jsonl',
      'validation.parquet',
      'test.json',
      'README.md',
    ]) {
      writeFileSync(join(d, f), '');
    }
    const r = resolveDataset([d]);
    expect(r.train.map((f) => f.path)).toEqual([
      join(d, 'train-00000-of-00002.jsonl'),
      join(d, 'train-00001-of-00002.jsonl'),
    ]);
    expect(r.validation).toEqual([{ path: join(d, 'validation.parquet'), kind: 'parquet' }]);
    expect(r.test).toEqual([{ path: join(d, 'test.json'), kind: 'json' }]);
  });

  test('a save_to_disk split and a DatasetDict', () => {
    const one = resolveDataset([join(FIXTURES, 'synthetic-sensitive-hf')]);
    expect(one.train).toEqual([
      { path: join(FIXTURES, 'synthetic-sensitive-hf/data-00000-of-00001.arrow'), kind: 'arrow' },
    ]);
    expect(one.validation).toEqual([]);
    // Shards without state.json (as copied from a save_to_disk folder) are train data too.
    expect(resolveDataset([join(FIXTURES, 'raft-arrow')]).train).toEqual([
      { path: join(FIXTURES, 'raft-arrow/data-00000-of-00001.arrow'), kind: 'arrow' },
    ]);
    const dict = resolveDataset([join(FIXTURES, 'dataset-dict')]);
    expect(dict.train.map((f) => f.path)).toEqual([
      join(FIXTURES, 'dataset-dict/train/data-00000-of-00001.arrow'),
    ]);
    expect(dict.validation.map((f) => f.path)).toEqual([
      join(FIXTURES, 'dataset-dict/validation/data-00000-of-00001.arrow'),
    ]);
    expect(dict.test.map((f) => f.path)).toEqual([
      join(FIXTURES, 'dataset-dict/test/data-00000-of-00001.arrow'),
    ]);
  });

  test('files, a list of paths, and errors for missing paths, unknown types and empty folders', () => {
    const a = join(dir, 'one.jsonl');
    writeFileSync(a, '');
    const b = join(FIXTURES, 'text.zstd.parquet');
    expect(resolveDataset([a, b]).train).toEqual([
      { path: a, kind: 'jsonl' },
      { path: b, kind: 'parquet' },
    ]);
    expect(() => resolveDataset([join(dir, 'nope.jsonl')])).toThrow(/dataset path does not exist/);
    const xlsx = join(dir, 'data.xlsx');
    writeFileSync(xlsx, 'PK');
    expect(() => resolveDataset([xlsx])).toThrow(
      /unknown data file type \(fix: use one of \.jsonl, \.json, \.csv, \.tsv \(each also \.gz\)/,
    );
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(() => resolveDataset([empty])).toThrow(/no training data in this folder/);
  });
});
