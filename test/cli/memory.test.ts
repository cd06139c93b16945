/**
 * Settings far past the backend's memory are refused by `mft train` before any work and by
 * `mft config check`, with the estimate broken down, the limit and the fix (exit 2).
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const BASE = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
const dir = fileTempDir('memory-cli');
let task = '';

beforeAll(() => {
  const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ text: `Tom had ${i} red balls.` }));
  writeFileSync(join(dir, 'data.jsonl'), `${lines.join('\n')}\n`);
  task = join(dir, 'task.yaml');
  writeFileSync(
    task,
    [
      'task: text',
      'dataset: ./data.jsonl',
      `base_model: ${BASE}`,
      'backend: wasm',
      'sequence_len: 48',
      'micro_batch_size: 2',
      'max_steps: 2',
      'lora_r: 4',
      'val_set_size: 0',
      'cache_dir: ./cache',
      '',
    ].join('\n'),
  );
});

const refused = (fix: RegExp) =>
  new RegExp(
    `^mft: .*task\\.yaml: training on wasm needs about [\\d.]+ [GTP]iB \\(base 1016 KiB outside tfjs; tensors [\\d.]+ [GTP]iB: LoRA .*, AdamW .*, gradients .*, layer weights .*, activations .*, lm_head and logits .*\\): tensors more than the wasm heap's 4 GiB \\(fix: use ${fix.source}`,
    'm',
  );

/** The CLI's own lines (Dawn may print warnings while the backends are probed). */
const mftLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('mft:'));

describe('the memory estimate before training', () => {
  test.each([
    ['lora_r=100000', /a smaller lora_r \(now 100000\)/],
    ['micro_batch_size=1000000', /a smaller micro_batch_size \(now 1000000;/],
  ])('mft train --set %s is refused before any work', (set, fix) => {
    const out = join(dir, `run-${set.split('=')[0]}`);
    const r = runCli(['train', task, '--set', set, '--output-dir', out]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(refused(fix));
    expect(mftLines(r.stderr)).toHaveLength(1);
    // no data read, no run written
    expect(existsSync(join(dir, 'cache'))).toBe(false);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });

  test.each([
    ['lora_r=100000', /a smaller lora_r \(now 100000\)/],
    ['micro_batch_size=1000000', /a smaller micro_batch_size \(now 1000000;/],
  ])('mft config check --set %s fails the same way', (set, fix) => {
    const r = runCli(['config', 'check', task, '--set', set]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(refused(fix));
  });

  test('mft config check reports the estimate of settings that fit', () => {
    const r = runCli(['config', 'check', task]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /memory on wasm: about [\d.]+ [KM]iB \(base 1016 KiB outside tfjs; tensors [\d.]+ [KM]iB: LoRA .*\); limit: the wasm heap \(4 GiB\) and this machine's memory/,
    );
    const json = JSON.parse(runCli(['config', 'check', task, '--json']).stdout);
    expect(json.memory).toMatchObject({ backend: 'wasm', fits: true, base: 1040128 });
    expect(json.memory.layer_weights).toBeGreaterThan(0);
  });
});
