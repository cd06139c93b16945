/**
 * eval, generate and serve load a model with its tokenizer as train does, and refuse one whose
 * vocab_size is below the tokenizer's ids at load (one check: model/check-vocabulary.ts), naming
 * both files, before any forward pass.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { writeTinyModel } from '../model/tiny-model.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const tmp = fileTempDir('vocab-cli');
const TOKENIZER = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');

/** A random model of 400 embedding rows with tinystories-260k's tokenizer of 512 ids. */
const small = (() => {
  const m = writeTinyModel({ vocab: 400, hidden: 8, intermediate: 8, heads: 2, kvHeads: 1, layers: 1 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(TOKENIZER, f), join(m.dir, f));
  return m.dir;
})();
const refusal =
  /config\.json: vocab_size 400 is smaller than the tokenizer's 512 ids \(.*tokenizer\.json\): ids 400\.\.511 have no embedding row \(fix: /;

describe('a checkpoint whose vocab_size is below its tokenizer ids', () => {
  test('mft eval refuses it, naming both files', () => {
    const data = join(tmp, 'data.jsonl');
    writeFileSync(data, `${JSON.stringify({ text: 'Once upon a time there was a cat.' })}\n`);
    const r = runCli(['eval', '--model', small, '--data', data, '--backend', 'cpu']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(refusal);
    expect(r.stderr).not.toMatch(/outside the vocabulary|\n\s+at /);
  });

  test('mft generate refuses it, naming both files', () => {
    const r = runCli([
      'generate',
      '--model',
      small,
      '--prompt',
      'Once',
      '--max-new-tokens',
      '2',
      '--backend',
      'cpu',
    ]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(refusal);
  });

  test('mft serve refuses it before listening', () => {
    const r = runCli(['serve', '--model', small, '--port', '0', '--backend', 'cpu']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(refusal);
    expect(r.stderr).not.toMatch(/serving/);
  });
});
