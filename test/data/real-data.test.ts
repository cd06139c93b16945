// End-to-end builds over the real data files in test/fixtures/data with real tokenizers.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildDataset } from '../../src/data/build-dataset.js';
import type { DataConfig, DataRecipe } from '../../src/data/types.js';
import { loadTokenizer, type MftTokenizer } from '../../src/tokenizer/index.js';
import { dataConfig, plainRecipe } from '../helpers/data-config.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

const FIXTURES = join(import.meta.dirname, '../fixtures');
let cache: string;
let smol: MftTokenizer;

beforeAll(async () => {
  cache = makeTempDir('real');
  smol = await loadTokenizer(join(FIXTURES, 'tokenizers/smollm2-135m-instruct'));
});
afterAll(removeTempDirs);

function config(dataset: string, recipe: DataRecipe, over: Partial<DataConfig> = {}): DataConfig {
  return dataConfig({
    dataset: [join(FIXTURES, 'data', dataset)],
    recipe,
    seed: 1,
    cache_dir: cache,
    ...over,
  });
}

const quiet = { log: () => {} };

describe('real data files', () => {
  test('a save_to_disk folder (2872 texts, int64 labels ignored) with the text recipe', async () => {
    const recipe = plainRecipe('text');
    const data = await buildDataset(
      config('synthetic-sensitive-hf', recipe, { val_set_size: 0.1 }),
      smol,
      quiet,
    );
    expect(data.stats.records).toBe(2872);
    expect(data.stats.validation!.records).toBe(287);
    expect(data.stats.train.records).toBe(2585);
    // Short sentences pack densely.
    expect(data.stats.train.packingEfficiency).toBeGreaterThan(0.97);
    // Each sample ends with EOS (id 2) and is whole in its row.
    const row = data.train.row(0);
    for (let t = 1; t < 256; t++) {
      if (
        row.segmentIds[t] !== row.segmentIds[t - 1] &&
        row.labels[t - 1] === -100 &&
        row.inputIds[t] !== smol.padId
      ) {
        expect(row.inputIds[t - 1]).toBe(2);
      }
    }
  });

  test('RAFT arrow (nested columns) with a completion recipe mapped to question -> cot_answer', async () => {
    const recipe = plainRecipe('completion');
    const cfg = config('raft-arrow', recipe, {
      fields: { prompt: 'question', completion: 'cot_answer' },
      sequence_len: 4096,
      truncation: 'drop',
    });
    const data = await buildDataset(cfg, smol, quiet);
    expect(data.stats.records).toBe(263);
    const ex = data.examples(1)[0]!;
    const firstTrained = ex.labels.findIndex((l) => l !== -100);
    // The prompt (the question) carries no loss; the answer does.
    expect(smol.decode(Array.from(ex.ids.subarray(0, firstTrained)))).toBe(
      'What did the two main things the author worked on before college involve?',
    );
    expect(smol.decode(Array.from(ex.ids.subarray(firstTrained))).startsWith('assistant:')).toBe(true);
    // Every token from the answer's first on carries loss (the answer and EOS).
    expect(Array.from(ex.labels.subarray(firstTrained))).toEqual(Array.from(ex.ids.subarray(firstTrained)));
    expect(data.stats.train.trainedTokens).toBeLessThan(data.stats.train.tokens);
  });

  test('Parquet chats with the instruct recipe: only assistant replies carry loss', async () => {
    const recipe = plainRecipe('instruct');
    const data = await buildDataset(config('chat.snappy.parquet', recipe), smol, quiet);
    expect(data.stats.records).toBe(4);
    const replies = data.examples(4).map((s) => {
      const out: string[] = [];
      let run: number[] = [];
      for (let t = 0; t < s.ids.length; t++) {
        if (s.labels[t] !== -100) run.push(s.ids[t]!);
        else if (run.length > 0) {
          out.push(smol.decode(run));
          run = [];
        }
      }
      if (run.length > 0) out.push(smol.decode(run));
      return out;
    });
    expect(replies).toEqual([
      ['4<|im_end|>\n'],
      ['Paris<|im_end|>\n'],
      ['hi<|im_end|>\n', 'hi again<|im_end|>\n'],
      ['blue<|im_end|>\n'],
    ]);
  });

  test('a DatasetDict gives its train and validation splits', async () => {
    const recipe = plainRecipe('completion');
    const data = await buildDataset(config('dataset-dict', recipe, { val_set_size: 0.5 }), smol, quiet);
    expect(data.stats.validationFrom).toBe('files');
    expect(data.stats.train.records).toBe(3);
    expect(data.stats.validation!.records).toBe(1);
    const v = data.validation!.row(0);
    const doc = Array.from(v.inputIds).filter((_, t) => v.segmentIds[t] === 0);
    expect(smol.decode(doc)).toBe('v1 prompt v1<|im_end|>');
  });
});
