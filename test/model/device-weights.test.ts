/**
 * The device weight provider (`deviceWeights`: storage uploaded once, layers widened on the device)
 * against the CPU path (`layerTensors`: widened in JavaScript, uploaded as fp32), on every backend
 * its kernels are registered for; how much it holds and frees; and which provider each backend gets.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, test, vi } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import {
  deviceWeights,
  disposeLayerTensors,
  type LayerTensorName,
  type LoadedModel,
  type LoadModelOptions,
  layerTensors,
  loadModel,
  trainingWeights,
} from '../../src/model/index.js';
import { onBackends } from '../helpers/backends.js';
import { writeTinyModel } from './tiny-model.js';

const tiny = writeTinyModel({
  hidden: 64,
  intermediate: 96,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  attentionBias: true,
});

const STORAGES: [string, LoadModelOptions, boolean][] = [
  ['fp32', { precision: 'fp32' }, true],
  ['bf16', { precision: 'bf16' }, true],
  ['f16', { precision: 'fp16' }, true],
  ['NF4', { quantization: 'nf4', doubleQuant: false }, true],
  ['NF4 + double quant', { quantization: 'nf4', doubleQuant: true }, false],
  ['int8', { quantization: 'int8' }, false],
];

/** Bytes handed from JavaScript to the backend (tf.tensor and friends) while `f` runs. */
function bytesWritten<R>(f: () => R): { result: R; bytes: number } {
  const spy = vi.spyOn(tf.backend(), 'write');
  try {
    const result = f();
    let bytes = 0;
    for (const [values] of spy.mock.calls) bytes += (values as ArrayBufferView | null)?.byteLength ?? 0;
    return { result, bytes };
  } finally {
    spy.mockRestore();
  }
}

onBackends(['cpu', 'wasm', 'webgpu'], 'deviceWeights', (backend) => {
  beforeAll(() => initBackend(backend));

  for (const [label, opts, exact] of STORAGES) {
    test(`${label}: every tensor of every layer ${exact ? 'equals' : 'is within 8 ulps of'} the CPU path's`, async () => {
      const model = await loadModel(tiny.dir, opts);
      const weights = deviceWeights(model);
      try {
        for (let i = 0; i < model.layers.length; i++) {
          const got = weights.layer(i);
          const want = layerTensors(model, i);
          expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
          expect(got.layout).toBe(want.layout);
          for (const [name, w] of Object.entries(want).filter(([k]) => k !== 'layout') as [
            LayerTensorName,
            tf.Tensor,
          ][]) {
            const g = got[name]!;
            expect(g.shape, name).toEqual(w.shape);
            const [a, b] = [(await g.data()) as Float32Array, (await w.data()) as Float32Array];
            let maxDiff = 0;
            let maxAbs = 0;
            for (let k = 0; k < b.length; k++) {
              maxDiff = Math.max(maxDiff, Math.abs(a[k]! - b[k]!));
              maxAbs = Math.max(maxAbs, Math.abs(b[k]!));
            }
            expect(maxDiff, `layer ${i} ${name}`).toBeLessThanOrEqual(exact ? 0 : 2 ** -20 * maxAbs);
          }
          weights.release(got);
          disposeLayerTensors(want);
        }
        // the head's weights are never quantized: bit for bit
        const head = weights.head!();
        expect(Array.from(await head.norm.data())).toEqual(Array.from(model.norm.toFloat32()));
        expect(head.lm_head.shape).toEqual(model.lm_head.shape);
        expect(Array.from(await head.lm_head.data())).toEqual(Array.from(model.lm_head.toFloat32()));
        tf.dispose([head.norm, head.lm_head]);
      } finally {
        weights.dispose();
      }
    });
  }

  test('repeated layer() / release() leave tf.memory() unchanged; dispose() frees the upload', async () => {
    const model = await loadModel(tiny.dir, { quantization: 'nf4' });
    const before = tf.memory();
    const weights = deviceWeights(model);
    const held = tf.memory();
    expect(held.numTensors).toBeGreaterThan(before.numTensors);
    for (let cycle = 0; cycle < 20; cycle++) {
      for (let i = 0; i < model.layers.length; i++) weights.release(weights.layer(i));
    }
    expect(tf.memory().numTensors).toBe(held.numTensors);
    expect(tf.memory().numBytes).toBe(held.numBytes);
    weights.dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
  });

  test(`trainingWeights on ${backend}: ${backend === 'webgpu' ? 'storage held on the device, no bytes written from the CPU per layer or for the head' : 'nothing held, each layer written from the CPU (as before)'}`, async () => {
    const model: LoadedModel = await loadModel(tiny.dir, { quantization: 'nf4' });
    const before = tf.memory().numTensors;
    const weights = trainingWeights(model);
    try {
      const held = tf.memory().numTensors - before;
      const { result, bytes } = bytesWritten(() => weights.layer(1));
      weights.release(result);
      if (backend === 'webgpu') {
        expect(held).toBeGreaterThan(0);
        expect(bytes).toBe(0);
        const head = bytesWritten(() => weights.head!());
        tf.dispose([head.result.norm, head.result.lm_head]);
        expect(head.bytes).toBe(0);
      } else {
        expect(held).toBe(0);
        expect(weights.head).toBeUndefined();
        const tensors = Object.values(result).filter((t): t is tf.Tensor => t instanceof tf.Tensor);
        expect(bytes).toBeGreaterThanOrEqual(tensors.reduce((n, t) => n + 4 * t.size, 0));
      }
    } finally {
      weights.dispose();
    }
  });
});
