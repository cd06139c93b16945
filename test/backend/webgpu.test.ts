import * as tf from '@tensorflow/tfjs';
import { describe, expect, test } from 'vitest';
import { initBackend, probeBackends } from '../../src/backend/index.js';
import { isSoftwareAdapter } from '../../src/backend/webgpu.js';

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

const webgpu = (await probeBackends()).find((p) => p.name === 'webgpu')!;

describe.skipIf(!webgpu.available)(`backend: webgpu (${webgpu.detail})`, () => {
  test('initialises by name, even on a CPU-emulated adapter, and computes', async () => {
    expect(await initBackend('webgpu')).toBe('webgpu');
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])));
    expect([...(await y.data())]).toEqual([19, 22, 43, 50]);
    y.dispose();
  });
});
