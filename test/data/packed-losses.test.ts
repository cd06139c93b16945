// Packing must not change what the model computes: every sample's loss is the same whether it
// sits alone in a padded row or packed with others (segment mask, restarted positions, -100 on
// the last token of each sample). Run through the real model forward on llama-golden.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { buildDataset, type PackedDataset } from '../../src/data/build-dataset.js';
import type { PackedSplit } from '../../src/data/packed-split.js';
import type { DataConfig } from '../../src/data/types.js';
import { forward, type LoadedModel, loadModel } from '../../src/model/index.js';
import { Rng } from '../../src/util/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { charTokenizer } from './char-tokenizer.js';

const VOCAB = 384; // llama-golden
let dir: string;
let model: LoadedModel;

beforeAll(async () => {
  await initBackend('wasm');
  dir = makeTempDir('packed-loss');
  model = await loadModel(join(import.meta.dirname, '../fixtures/llama-golden'));
});
afterAll(removeTempDirs);

/** Per-sample loss sums (float64 cross-entropy over the returned logits), keyed by store sample index. */
async function perSampleLoss(split: PackedSplit, seqLen: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (let i = 0; i < split.numRows; i++) {
    const batch = split.batch([i]);
    const { logits } = await forward(model, batch, { returnLogits: true });
    const samples = split.rowSamples(i);
    for (let t = 0; t < seqLen; t++) {
      const label = batch.labels[t]!;
      if (label === -100) continue;
      const row = logits!.subarray(t * VOCAB, (t + 1) * VOCAB);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      const nll = Math.log(sum) + max - row[label]!;
      const sample = samples[batch.segmentIds[t]!]!;
      out.set(sample, (out.get(sample) ?? 0) + nll);
    }
  }
  return out;
}

test('packed and unpacked rows give the same per-sample losses', async () => {
  const rng = new Rng(3);
  const records = Array.from({ length: 7 }, (_, i) => {
    const len = 3 + rng.int(9);
    const input_ids = Array.from({ length: len }, () => rng.int(VOCAB));
    // Some samples mask their first tokens, as a prompt would be.
    const labels = input_ids.map((id, t) => (i % 2 === 1 && t < 2 ? -100 : id));
    return { input_ids, labels };
  });
  const path = join(dir, 'tokens.jsonl');
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n'));
  const config = (packing: boolean): DataConfig => ({
    dataset: [path],
    recipe: { name: 'text', format: 'text', fields: { text: 'text' }, train_on: 'all', add_eos: true },
    seed: 1,
    cache_dir: join(dir, 'cache'),
    sequence_len: 24,
    sample_packing: packing,
    truncation: 'split',
    val_set_size: 0,
    on_bad_record: 'error',
    fields: {},
    fim_rate: 0,
  });
  const tok = charTokenizer();
  const packed: PackedDataset = await buildDataset(config(true), tok, { log: () => {} });
  const unpacked: PackedDataset = await buildDataset(config(false), tok, { log: () => {} });
  expect(packed.train.numRows).toBeLessThan(unpacked.train.numRows);
  expect(unpacked.train.numRows).toBe(7);
  const before = tf.memory().numTensors;
  const a = await perSampleLoss(packed.train, 24);
  const b = await perSampleLoss(unpacked.train, 24);
  expect(tf.memory().numTensors).toBe(before);
  expect([...a.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  for (const [sample, loss] of b) {
    expect(Math.abs(a.get(sample)! - loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(loss)));
  }
  // The forward's own loss sum over all rows agrees too.
  const total = async (split: PackedSplit) => {
    let s = 0;
    for (let i = 0; i < split.numRows; i++) s += (await forward(model, split.batch([i]))).lossSum;
    return s;
  };
  expect(await total(packed.train)).toBeCloseTo(await total(unpacked.train), 3);
});
