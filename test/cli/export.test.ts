/** `mft export gguf` through the CLI: the file, its summary, and the exit-2 errors. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { runCli } from './run-cli.js';

const BASE = 'checkpoints/base/tinystories-260k';
const root = fileTempDir('cli-export');

describe('mft export gguf', () => {
  test('writes a GGUF file, prints its path; an existing --out needs --overwrite', () => {
    const out = join(root, 'stories.gguf');
    const r = runCli(['export', 'gguf', '--model', BASE, '--out', out, '--type', 'q8_0']);
    expect(r.stderr).toContain('written as f16'); // ffn_down rows of 172 values cannot be q8_0
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    const head = readFileSync(out).subarray(0, 8);
    expect(head.subarray(0, 4).toString()).toBe('GGUF');
    expect(head.readUInt32LE(4)).toBe(3);

    const again = runCli(['export', 'gguf', '--model', BASE, '--out', out]);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain(
      `mft: --out: ${out} already exists (fix: choose another file or pass --overwrite)`,
    );
    expect(runCli(['export', 'gguf', '--model', BASE, '--out', out, '--overwrite']).status).toBe(0);
  });

  test('--lora-only needs --adapter, and is f32 or f16', () => {
    const out = join(root, 'lora.gguf');
    const r = runCli(['export', 'gguf', '--model', BASE, '--out', out, '--lora-only']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('mft: --lora-only: needs --adapter (fix: pass --adapter DIR)');
    const golden = 'test/fixtures/llama-golden';
    const q = runCli([
      'export',
      'gguf',
      '--model',
      golden,
      '--adapter',
      `${golden}/adapter`,
      '--out',
      out,
      '--lora-only',
      '--type',
      'q8_0',
    ]);
    expect(q.status).toBe(2);
    expect(q.stderr).toContain('a GGUF LoRA adapter is written as f32 or f16');
  });

  test('a model folder without tokenizer.json: exit 2 naming the folder', () => {
    const r = runCli([
      'export',
      'gguf',
      '--model',
      'test/fixtures/llama-golden',
      '--out',
      join(root, 'g.gguf'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no tokenizer.json: GGUF files carry the tokenizer');
  });
});
