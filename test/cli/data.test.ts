import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { REPO_ROOT, runCli } from './run-cli.js';

let dir: string;
const BASE = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');

beforeAll(() => {
  dir = makeTempDir('cli-data');
  writeFileSync(
    join(dir, 'data.jsonl'),
    [
      { prompt: 'Once upon a time', completion: ' there was a cat.' },
      { prompt: 'The dog', completion: ' ran home.' },
      { prompt: 'Lily saw', completion: ' a big tree.' },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n'),
  );
  writeFileSync(
    join(dir, 'bad.jsonl'),
    '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": 42}\n',
  );
  const task = (dataset: string) =>
    `task: completion\ndataset: ./${dataset}\nbase_model: ${BASE}\ncache_dir: cache\nsequence_len: 64\nval_set_size: 0\nmicro_batch_size: 2\nnum_epochs: 3\n`;
  writeFileSync(join(dir, 'task.yaml'), task('data.jsonl'));
  writeFileSync(join(dir, 'bad.yaml'), task('bad.jsonl'));
});
afterAll(removeTempDirs);

describe('mft data inspect', () => {
  test('prints the figures and examples with the untrained tokens bracketed', () => {
    const r = runCli(['data', 'inspect', join(dir, 'task.yaml'), '-n', '2']);
    expect(r.stderr).toMatch(/data: train 3 records -> 3 samples/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^task {9}completion \(completion, loss on completion\)$/m);
    expect(r.stdout).toMatch(/^records {6}3 read \(3 train, 0 validation\), 0 skipped$/m);
    expect(r.stdout).toMatch(/^packing {6}1 rows of 64, efficiency \d+\.\d%$/m);
    // 1 row / (2 x 1) -> 1 step per epoch, 3 epochs.
    expect(r.stdout).toMatch(
      /^steps {8}1 per epoch \(micro_batch_size 2 x gradient_accumulation_steps 1\), 3 in total \(num_epochs 3\)$/m,
    );
    expect(r.stdout).toContain('--- example 1 of 2');
    // The prompt (and BOS) carry no loss; the completion and EOS do.
    expect(r.stdout).toMatch(/⟦<s> ?Once upon a time⟧ there was a cat\.<\/s>/);
    expect(r.stdout).toMatch(/⟦<s> ?The dog⟧ ran home\.<\/s>/);
  });

  test('--json prints one document with the stats, steps and examples', () => {
    const r = runCli(['data', 'inspect', join(dir, 'task.yaml'), '--json', '-n', '1']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.sequence_len).toBe(64);
    expect(doc.stats.records).toBe(3);
    expect(doc.stats.train.samples).toBe(3);
    expect(doc.steps_per_epoch).toBe(1);
    expect(doc.total_steps).toBe(3);
    expect(doc.examples).toHaveLength(1);
    expect(doc.examples[0].trained_tokens).toBeGreaterThan(0);
    expect(doc.examples[0].trained_tokens).toBeLessThan(doc.examples[0].tokens);
    expect(doc.cache_key).toMatch(/^[0-9a-f]{64}$/);
  });

  test('a bad record exits 2 with its file, line, field and fix', () => {
    const r = runCli(['data', 'inspect', join(dir, 'bad.yaml')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^mft: .*bad\.jsonl:2: completion: expected a string, got 42 \(fix: fix the record, or set on_bad_record: skip to leave out such records\)$/m,
    );
    const skip = runCli(['data', 'inspect', join(dir, 'bad.yaml'), '--set', 'on_bad_record=skip']);
    expect(skip.status).toBe(0);
    expect(skip.stdout).toMatch(/1 read \(1 train, 0 validation\), 1 skipped/);
    expect(skip.stdout).toMatch(/^skipped {6}.*bad\.jsonl:2: completion: expected a string, got 42$/m);
  });
});

describe('mft data from-dir', () => {
  test('writes train/validation JSONL and a README with the content hash', () => {
    const src = join(dir, 'src');
    mkdirSync(join(src, 'lib'), { recursive: true });
    for (let i = 0; i < 10; i++) writeFileSync(join(src, 'lib', `f${i}.ts`), `export const v${i} = ${i};\n`);
    writeFileSync(join(src, 'README.md'), '# not code\n');
    const out = join(dir, 'ds');
    const r = runCli([
      'data',
      'from-dir',
      src,
      '--out',
      out,
      '--lang',
      'typescript',
      '--val-fraction',
      '0.2',
      '--json',
    ]);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ train: 8, validation: 2, languages: { typescript: 10 } });
    expect(report.skipped['not source code']).toBe(1);
    const readme = readFileSync(join(dir, 'ds/README.md'), 'utf8');
    expect(readme).toContain(report.content_hash);
    expect(readme).toContain(
      `mft data from-dir ${src} --out ${out} --lang typescript --val-fraction 0.2 --seed 0`,
    );
    const first = JSON.parse(readFileSync(join(dir, 'ds/train.jsonl'), 'utf8').split('\n')[0]!);
    expect(Object.keys(first)).toEqual(['text', 'path', 'lang']);
  });

  test('a bad flag value exits 2', () => {
    const r = runCli([
      'data',
      'from-dir',
      join(dir, 'src'),
      '--out',
      join(dir, 'x'),
      '--val-fraction',
      'lots',
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/mft: --val-fraction: expected a number, got "lots"/);
  });
});
