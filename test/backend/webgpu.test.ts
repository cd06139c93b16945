import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, test } from 'vitest';
import { initBackend, probeBackends } from '../../src/backend/index.js';
import { gpuFailure, isSoftwareAdapter } from '../../src/backend/webgpu.js';
import { REPO_ROOT, runCli } from '../cli/run-cli.js';

describe('isSoftwareAdapter', () => {
  test('lavapipe, SwiftShader and fallback adapters are CPU emulations; a real GPU is not', () => {
    const info = (architecture: string, device: string, description = '') => ({
      vendor: 'x',
      architecture,
      device,
      description,
    });
    expect(isSoftwareAdapter(info('software', 'llvmpipe-llvm-15'))).toBe(true);
    expect(isSoftwareAdapter(info('', '', 'llvmpipe: Mesa 25.0.7'))).toBe(true);
    expect(isSoftwareAdapter(info('', 'SwiftShader Device'))).toBe(true);
    expect(isSoftwareAdapter(info('hopper', 'NVIDIA H200'), true)).toBe(true);
    expect(isSoftwareAdapter(info('hopper', 'NVIDIA H200', 'NVIDIA: 550.90'))).toBe(false);
  });
});

describe('gpuFailure', () => {
  test('a lost device and an out-of-memory error name the adapter and the fix; a destroyed device is no failure', () => {
    const lost = gpuFailure('NVIDIA H200', { lost: { reason: 'unknown', message: 'device hung' } })!;
    expect(lost.where).toBe('backend webgpu (NVIDIA H200)');
    expect(lost.message).toBe('the GPU device was lost: device hung');
    expect(lost.fix).toMatch(/smaller micro_batch_size .* another backend \(--set backend=wasm\)/);
    class GPUOutOfMemoryError {
      message = 'Allocation failed\n - While calling [Device].CreateBuffer';
    }
    const oom = gpuFailure('llvmpipe', { error: new GPUOutOfMemoryError() })!;
    expect(oom.message).toBe('out of GPU memory: Allocation failed');
    expect(gpuFailure('x', { lost: { reason: 'destroyed', message: '' } })).toBeNull();
  });
});

test('backend: webgpu without a Vulkan driver: exit 2 with what was asked, what was found and the fix', () => {
  const r = runCli(
    ['train', 'configs/code_completion.yaml', '--set', 'backend=webgpu', '--set', 'max_steps=1'],
    {
      env: { VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' },
    },
  );
  expect(r.status).toBe(2);
  const line = r.stderr.split('\n').find((l) => l.startsWith('mft: '));
  expect(line).toMatch(/^mft: backend: webgpu is not available: .+ \(fix: .*--set backend=wasm/);
});

const webgpu = (await probeBackends()).find((p) => p.name === 'webgpu')!;

describe.skipIf(!webgpu.available)(`backend: webgpu (${webgpu.detail})`, () => {
  test('initialises by name, even on a CPU-emulated adapter, and computes', async () => {
    expect(await initBackend('webgpu')).toBe('webgpu');
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])));
    expect([...(await y.data())]).toEqual([19, 22, 43, 50]);
    y.dispose();
  });

  test('a GPU error during a run ends the process with exit 2 and one line, not a hang', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', `${REPO_ROOT}test/backend/gpu-error-child.ts`],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(r.stdout).not.toMatch(/still running/);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^mft: backend webgpu \(.+\): the GPU refused an allocation or a kernel \(GPUValidationError\): .+ \(fix: a smaller micro_batch_size/m,
    );
  });
});
