/**
 * The main job (configs/code_completion.yaml: tinystories-260k on github_code) for a few steps on
 * webgpu and on wasm: the same losses. On CI webgpu is Mesa's lavapipe (.ci/install-vulkan).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { WEBGPU_AVAILABLE, webgpuSkipReason } from '../helpers/backends.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { runCli } from './run-cli.js';

afterAll(removeTempDirs);

interface Row {
  type: string;
  step: number;
  loss?: number;
  grad_norm?: number;
  eval_loss?: number;
}

function mainJob(backend: 'wasm' | 'webgpu'): Row[] {
  const out = join(makeTempDir(`main-job-${backend}`), 'run');
  const r = runCli([
    'train',
    'configs/code_completion.yaml',
    ...['--set', `backend=${backend}`, '--set', 'max_steps=2', '--set', 'logging_steps=1'],
    ...['--set', 'eval_max_samples=4', '--output-dir', out, '--json'],
  ]);
  expect(r.status, r.stderr).toBe(0);
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row);
}

test.skipIf(!WEBGPU_AVAILABLE)(
  `the main job on webgpu: every train and eval loss within 1e-4 of wasm's${webgpuSkipReason()}`,
  () => {
    const wasm = mainJob('wasm');
    const webgpu = mainJob('webgpu');
    expect(webgpu.map((r) => [r.type, r.step])).toEqual(wasm.map((r) => [r.type, r.step]));
    expect(wasm.filter((r) => r.type === 'train')).toHaveLength(2);
    for (const [i, w] of wasm.entries()) {
      const g = webgpu[i]!;
      const [a, b] = w.type === 'train' ? [w.loss!, g.loss!] : [w.eval_loss!, g.eval_loss!];
      expect(Math.abs(a - b), `${w.type} step ${w.step}: wasm ${a}, webgpu ${b}`).toBeLessThan(1e-4);
      if (w.type === 'train') expect(Math.abs(w.grad_norm! - g.grad_norm!)).toBeLessThan(1e-4 * w.grad_norm!);
    }
  },
  300_000,
);
