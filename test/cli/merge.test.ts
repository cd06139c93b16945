/** `mft merge` end to end through the CLI: streams, exit codes, --checkpoint, --json; the base check shared with eval and generate. */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/weights/index.js';
import { writeCheckpoint } from '../helpers/fake-checkpoint.js';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { runCli } from './run-cli.js';

const BASE = 'test/fixtures/llama-golden';
const ADAPTER = `${BASE}/adapter`;
const root = fileTempDir('cli-merge');

describe('mft merge', () => {
  test('writes the merged model, prints its folder on stdout and the adapter used on stderr', () => {
    const out = join(root, 'merged');
    const r = runCli(['merge', '--model', BASE, '--adapter', ADAPTER, '--out', out, '--dtype', 'bf16']);
    expect(r.stderr).toContain(`mft: merging adapter ${ADAPTER}`);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    const f = SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(f.info('model.layers.0.self_attn.q_proj.weight').dtype).toBe('BF16');
    f.close();

    const again = runCli(['merge', '--model', BASE, '--adapter', ADAPTER, '--out', out]);
    expect(again.status).toBe(2);
    expect(again.stdout).toBe('');
    expect(again.stderr).toContain(
      `mft: --out: ${out} already exists (fix: choose another directory or pass --overwrite)`,
    );
  });

  test('a run folder with --checkpoint best, --max-shard-size and --json', () => {
    const run = join(root, 'run');
    writeCheckpoint(run, 5, 5, ADAPTER);
    writeCheckpoint(run, 10, 5, ADAPTER);
    const out = join(root, 'best');
    const r = runCli([
      'merge',
      '--model',
      BASE,
      '--adapter',
      run,
      '--checkpoint',
      'best',
      '--max-shard-size',
      '200KB',
      '--out',
      out,
      '--json',
    ]);
    expect(r.stderr).toContain(`mft: merging best checkpoint (step 5, lowest eval loss) of run ${run}`);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      adapter: join(run, 'checkpoint-5'),
      dtype: 'fp32',
      scale: 2,
      merged_weights: 14,
    });
    expect(report.files).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(true);

    const bad = runCli(['merge', '--model', BASE, '--adapter', run, '--out', join(root, 'x')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(
      'has no final adapter/ (training did not finish) (fix: pick a checkpoint: --checkpoint 10 (or best))',
    );
  });

  test('merge, eval and generate agree: an adapter trained on another base is an error (exit 2)', () => {
    const adapter = join(root, 'other-base');
    mkdirSync(adapter, { recursive: true });
    for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
      copyFileSync(join(ADAPTER, f), join(adapter, f));
    const training = {
      base_model: 'checkpoints/base/other',
      config_hash: 'f00d',
      quantization: 'none',
      double_quant: false,
      precision: 'auto',
    };
    writeFileSync(join(adapter, 'mft_training.json'), JSON.stringify(training));
    const data = join(root, 'text.jsonl');
    writeFileSync(data, '{"text": "hello"}\n');
    const message = `mft: ${join(adapter, 'mft_training.json')}: the adapter was trained on a different base (config hash f00d, ${BASE} has `;
    const runs = {
      merge: ['merge', '--model', BASE, '--adapter', adapter, '--out', join(root, 'never')],
      eval: ['eval', '--model', BASE, '--adapter', adapter, '--data', data],
      generate: ['generate', '--model', BASE, '--adapter', adapter, '--max-new-tokens', '1'],
    };
    for (const [command, args] of Object.entries(runs)) {
      const r = runCli(args);
      expect(r.status, command).toBe(2);
      expect(r.stderr, command).toContain(message);
      expect(r.stderr, command).toContain('(fix: use --model checkpoints/base/other)');
    }
    expect(existsSync(join(root, 'never'))).toBe(false);
  });
});
