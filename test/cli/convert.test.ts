import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CONVERTED_FILES } from '../../src/convert/llama2c.js';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { runCli } from './run-cli.js';

const SHIPPED = 'checkpoints/base/tinystories-260k';
const CHECKPOINT = 'test/fixtures/stories260K/stories260K.bin';
const TOKENIZER = 'test/fixtures/stories260K/tok512.model';

const tmp = fileTempDir('convert');

describe('mft convert llama2c', () => {
  test('re-converting stories260K reproduces the shipped checkpoints/base/tinystories-260k byte for byte', () => {
    const out = join(tmp, 'ts260k');
    const r = runCli([
      'convert',
      'llama2c',
      '--checkpoint',
      CHECKPOINT,
      '--tokenizer',
      TOKENIZER,
      '--out',
      out,
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /LlamaForCausalLM, 5 layers, hidden 64, 8 heads \(4 kv\), vocab 512, 260,032 parameters/,
    );
    expect(readdirSync(out).sort()).toEqual([...CONVERTED_FILES].sort());
    expect(readdirSync(SHIPPED).sort()).toEqual([...CONVERTED_FILES, 'README.md'].sort());
    for (const f of CONVERTED_FILES) {
      const a = readFileSync(join(out, f));
      const b = readFileSync(join(SHIPPED, f));
      expect({ file: f, identical: a.equals(b) }).toEqual({ file: f, identical: true });
    }
  });

  test('--json prints one JSON object; an existing model needs --overwrite', () => {
    const out = join(tmp, 'json');
    const args = ['convert', 'llama2c', '--checkpoint', CHECKPOINT, '--tokenizer', TOKENIZER, '--out', out];
    const r = runCli([...args, '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      architecture: 'LlamaForCausalLM',
      parameters: 260032,
      num_hidden_layers: 5,
      num_key_value_heads: 4,
      vocab_size: 512,
      tie_word_embeddings: true,
    });
    const again = runCli(args);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/config\.json: already exists \(fix: .*--overwrite/);
  });

  test('a missing required flag exits 2', () => {
    const noOut = runCli(['convert', 'llama2c', '--checkpoint', CHECKPOINT, '--tokenizer', TOKENIZER]);
    expect(noOut.status).toBe(2);
    expect(noOut.stderr).toMatch(/--out <dir>/);
  });
});
