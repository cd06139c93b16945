// The shipped code dataset: its README records the content hash of its files, and it packs densely
// for the default task (code_completion, sequence_len 256, the tinystories-260k tokenizer).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { buildDataset } from '../../src/data/build-dataset.js';
import { datasetContentHash } from '../../src/data/from-dir/from-dir.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { dataConfig, plainRecipe } from '../helpers/data-config.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

const ROOT = join(import.meta.dirname, '../..');
const DATASET = join(ROOT, 'datasets/github_code');

test('README.md names the content hash of train.jsonl + validation.jsonl', () => {
  expect(readFileSync(join(DATASET, 'README.md'), 'utf8')).toContain(datasetContentHash(DATASET));
});

test('packing efficiency is at least 95% at sequence_len 256', async () => {
  const cache = makeTempDir('github-code');
  try {
    const tok = await loadTokenizer(join(ROOT, 'checkpoints/base/tinystories-260k'));
    const data = await buildDataset(
      dataConfig({ dataset: [DATASET], recipe: plainRecipe('code_completion'), seed: 42, cache_dir: cache }),
      tok,
      { log: () => {} },
    );
    expect(data.stats.skippedRecords).toBe(0);
    expect(data.stats.validationFrom).toBe('files');
    expect(data.stats.train.packingEfficiency).toBeGreaterThanOrEqual(0.95);
    expect(data.stats.validation!.packingEfficiency).toBeGreaterThanOrEqual(0.95);
  } finally {
    removeTempDirs();
  }
});
