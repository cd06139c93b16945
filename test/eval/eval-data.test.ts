/**
 * The records of an evaluation: pre-tokenized records used verbatim without a tokenizer, text
 * records tokenized by the model's tokenizer (loaded only then), the model's context as the limit,
 * and the held-out draw that matches the trainer's validation split (`buildDataset`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadRecipe } from '../../src/config/index.js';
import { buildDataset } from '../../src/data/index.js';
import { type EvalDataSpec, LazyTokenizer, readEvalData, resolveEvalSource } from '../../src/eval/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { MftError } from '../../src/util/index.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const GOLDEN = new URL('../fixtures/llama-golden/', import.meta.url).pathname; // no tokenizer files
const STORIES = new URL('../../checkpoints/base/tinystories-260k/', import.meta.url).pathname;
const tmp = fileTempDir('eval-data');

function jsonl(name: string, records: unknown[]): string {
  const path = join(tmp, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}

function spec(path: string, over: Partial<EvalDataSpec> = {}): EvalDataSpec {
  return {
    files: [{ path, kind: 'jsonl' }],
    recipe: loadRecipe('text'),
    seed: 0,
    onBadRecord: 'error',
    length: { kind: 'error' },
    maxPositions: 64,
    vocabSize: 384,
    tokenizer: new LazyTokenizer(GOLDEN),
    ...over,
  };
}

async function mftError(p: Promise<unknown>): Promise<MftError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MftError) return e;
    throw e;
  }
  throw new Error('expected an MftError');
}

describe('readEvalData', () => {
  test('pre-tokenized records are used verbatim (no BOS/EOS) and need no tokenizer', async () => {
    const path = jsonl('tokens.jsonl', [{ input_ids: [5, 6, 7] }, { input_ids: [9, 8], labels: [-100, 8] }]);
    const tokenizer = new LazyTokenizer(GOLDEN);
    const data = await readEvalData(spec(path, { tokenizer }));
    expect(data.samples.map((s) => Array.from(s.ids))).toEqual([
      [5, 6, 7],
      [9, 8],
    ]);
    // without labels every token is a target (the first predicts nothing when shifted)
    expect(data.samples.map((s) => Array.from(s.labels))).toEqual([
      [5, 6, 7],
      [-100, 8],
    ]);
    expect(data.recordCount).toBe(2);
    expect(data.records).toEqual([]); // no text for task metrics
    expect(tokenizer.loaded).toBeNull();
  });

  test('a record longer than max_position_embeddings is an error naming it', async () => {
    const path = jsonl('long.jsonl', [
      { input_ids: [1, 2] },
      { input_ids: Array.from({ length: 65 }, () => 3) },
    ]);
    const e = await mftError(readEvalData(spec(path)));
    expect(e.problems[0]!.where).toMatch(/long\.jsonl:2$/);
    expect(e.message).toMatch(
      /the record has 65 tokens, more than the model's max_position_embeddings \(64\)/,
    );
  });

  test('text with no tokenizer.json in the model folder is a clear error naming the record', async () => {
    const path = jsonl('text.jsonl', [{ input_ids: [1, 2] }, { text: 'Once upon a time' }]);
    const e = await mftError(readEvalData(spec(path)));
    expect(e.problems[0]!.where).toBe(GOLDEN);
    expect(e.message).toMatch(/no tokenizer\.json in the model folder, and .*text\.jsonl:2 is text/);
    expect(e.problems[0]!.fix).toMatch(/pre-tokenized data/);
  });

  test('an id outside the vocabulary is a bad record: error, or skipped and counted', async () => {
    const path = jsonl('bad.jsonl', [{ input_ids: [1, 400] }, { input_ids: [1, 2] }]);
    const e = await mftError(readEvalData(spec(path)));
    expect(e.message).toMatch(/input_ids\[1\]: id 400 is outside the model's vocabulary \(0\.\.383\)/);
    expect(e.problems[0]!.where).toMatch(/bad\.jsonl:1$/);
    const data = await readEvalData(spec(path, { onBadRecord: 'skip' }));
    expect(data.samples.length).toBe(1);
    expect(data.skipped).toBe(1);
  });

  test('text records are tokenized as training does (BOS, EOS of the recipe) and kept for task metrics', async () => {
    const path = jsonl('stories.jsonl', [{ text: 'Once upon a time' }]);
    const tok = await loadTokenizer(STORIES);
    const data = await readEvalData(
      spec(path, { tokenizer: new LazyTokenizer(STORIES), vocabSize: 512, maxPositions: 512 }),
    );
    // the text recipe adds EOS (id 2); tinystories' tokenizer adds BOS (id 1)
    expect(Array.from(data.samples[0]!.ids)).toEqual([...tok.encode('Once upon a time'), 2]);
    expect(data.records[0]!.formatted.segments.map((s) => s.text)).toEqual(['Once upon a time']);
  });

  test('with a task file, long samples are cut by sequence_len and truncation', async () => {
    const path = jsonl('cut.jsonl', [{ input_ids: [1, 2, 3, 4, 5] }, { input_ids: [6] }]);
    const split = await readEvalData(
      spec(path, { length: { kind: 'truncate', sequenceLen: 2, truncation: 'split' } }),
    );
    expect(split.samples.map((s) => Array.from(s.ids))).toEqual([[1, 2], [3, 4], [5], [6]]);
    expect(split.truncated).toBe(1);
    const drop = await readEvalData(
      spec(path, { length: { kind: 'truncate', sequenceLen: 2, truncation: 'drop' } }),
    );
    expect(drop.samples.map((s) => Array.from(s.ids))).toEqual([[6]]);
    expect(drop.dropped).toBe(1);
  });

  test("the held-out draw gives the samples of buildDataset's validation split", async () => {
    const texts = Array.from({ length: 20 }, (_, i) => ({
      text: `Story ${i}: the cat saw ${'a dog '.repeat(i % 5)}`,
    }));
    const path = jsonl('held/train.jsonl', texts);
    const recipe = loadRecipe('text');
    const tok = await loadTokenizer(STORIES);
    const built = await buildDataset(
      {
        dataset: [path],
        recipe,
        seed: 7,
        cache_dir: join(tmp, 'cache'),
        sequence_len: 256,
        sample_packing: false,
        truncation: 'split',
        val_set_size: 0.25,
        on_bad_record: 'error',
        fields: {},
        fim_rate: 0,
      },
      tok,
      { log: () => {} },
    );
    const val = built.validation!;
    const expected: number[][] = [];
    for (let i = 0; i < val.numRows; i++) {
      const row = val.row(i);
      expected.push(Array.from(row.inputIds.filter((_, t) => row.segmentIds[t] === 0)));
    }
    const source = resolveEvalSource([path], { split: 'validation', heldOut: { valSetSize: 0.25, seed: 7 } });
    expect(source.heldOut).toEqual({ valSetSize: 0.25, seed: 7 });
    const data = await readEvalData(
      spec(path, {
        files: source.files,
        heldOut: source.heldOut,
        seed: 7,
        tokenizer: new LazyTokenizer(STORIES),
        vocabSize: 512,
        maxPositions: 512,
      }),
    );
    expect(data.recordCount).toBe(5);
    const sorted = (rows: number[][]) => rows.map((r) => r.join(',')).sort();
    expect(sorted(data.samples.map((s) => Array.from(s.ids)))).toEqual(sorted(expected));
    expect(data.records.length).toBe(5);
  });
});

describe('resolveEvalSource', () => {
  const folder = join(tmp, 'ds');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'train.jsonl'), '{"text": "a"}\n');
  writeFileSync(join(folder, 'validation.jsonl'), '{"text": "b"}\n');
  const bare = join(tmp, 'bare');
  mkdirSync(bare, { recursive: true });
  writeFileSync(join(bare, 'train.jsonl'), '{"text": "a"}\n');

  test('a dataset folder: its validation files; --split test without test files is an error', () => {
    const s = resolveEvalSource([folder], { split: 'validation' });
    expect(s.files.map((f) => f.path)).toEqual([join(folder, 'validation.jsonl')]);
    expect(s.heldOut).toBeNull();
    expect(() => resolveEvalSource([folder], { split: 'test' })).toThrow(/no test split/);
  });

  test('a file given as --data is evaluated whole', () => {
    const s = resolveEvalSource([join(bare, 'train.jsonl')], { split: 'validation', explicitFiles: true });
    expect(s.files.map((f) => f.path)).toEqual([join(bare, 'train.jsonl')]);
    expect(s.heldOut).toBeNull();
  });

  test('no validation files: the task held-out draw, or an error saying what to do', () => {
    expect(
      resolveEvalSource([bare], { split: 'validation', heldOut: { valSetSize: 0.1, seed: 1 } }).heldOut,
    ).toEqual({
      valSetSize: 0.1,
      seed: 1,
    });
    expect(() => resolveEvalSource([bare], { split: 'validation' })).toThrow(/no validation split/);
    expect(() =>
      resolveEvalSource([bare], { split: 'validation', heldOut: { valSetSize: 0, seed: 1 } }),
    ).toThrow(/no validation split/);
  });
});
