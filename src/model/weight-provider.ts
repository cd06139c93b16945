/**
 * Where the decoder layers' weights come from while a pass runs. The base stays outside tfjs in
 * its storage format (`weights/`, `quant/`); a provider hands a layer to the compute as fp32 tensors
 * (`LayerTensors`, projections `[in, out]`) for as long as the layer computes:
 *   - streamed: widened from storage at every use and freed after it (one layer's fp32 weights
 *     at a time: the memory model of training and of large models);
 *   - resident: every layer widened once and kept for the whole pass (small models, many passes);
 *   - device: every layer (and the head's norm and lm_head) uploaded once in its storage format and
 *     widened on the device when asked for (webgpu: no weight bytes cross from the CPU in a pass,
 *     and the GPU holds 16-bit or quantized weights, not fp32).
 */
import * as tf from '@tensorflow/tfjs';
import type { LayerTensors } from './decoder-layer.js';
import {
  deviceLayerTensors,
  deviceToFloat32,
  disposeDeviceLayer,
  disposeDeviceTensor,
  uploadFrozen,
  uploadLayer,
} from './device-weights.js';
import { disposeLayerTensors, type LoadedModel, layerTensors } from './loaded-model.js';

/** The output head's frozen weights as fp32 tensors, for one use. */
export interface HeadTensors {
  norm: tf.Tensor1D; // [hidden]
  lm_head: tf.Tensor2D; // [vocab, hidden]
}

export interface WeightProvider {
  /**
   * Layer `i` as tensors. Give them back with `release` when the layer is done; inside a gradient
   * tape, leave them to the enclosing tf.tidy (the backward pass still reads them).
   */
  layer(i: number): LayerTensors;
  /** Done with tensors from `layer` (a no-op for weights the provider keeps). */
  release(w: LayerTensors): void;
  /** Free what the provider keeps. */
  dispose(): void;
  /**
   * The final norm and lm_head, when the provider keeps them (the device provider); without it the
   * head widens them from storage. The caller (its tf.tidy) frees them.
   */
  head?(): HeadTensors;
}

/** Run `f` with layer i's tensors, released afterwards. */
export function withLayer<R>(weights: WeightProvider, i: number, f: (w: LayerTensors) => R): R {
  const w = weights.layer(i);
  try {
    return f(w);
  } finally {
    weights.release(w);
  }
}

/** Each layer widened from storage when asked for and freed when released. */
export function streamedWeights(model: LoadedModel): WeightProvider {
  return {
    layer: (i) => layerTensors(model, i),
    release: disposeLayerTensors,
    dispose: () => {},
  };
}

/** Every layer widened once, kept until `dispose`. */
export function residentWeights(model: LoadedModel): WeightProvider {
  const layers = model.layers.map((_, i) => layerTensors(model, i));
  return {
    layer: (i) => layers[i] as LayerTensors,
    release: () => {},
    dispose: () => {
      for (const w of layers) disposeLayerTensors(w);
    },
  };
}

/**
 * Every layer uploaded once in its storage format, widened to fp32 on the device when asked for
 * and freed when released (the kernels of weights/device-kernels.ts; `initBackend` registers them).
 */
export function deviceWeights(model: LoadedModel): WeightProvider {
  const layers = model.layers.map(uploadLayer);
  const norm = uploadFrozen(model.norm);
  const lmHead = uploadFrozen(model.lm_head);
  return {
    layer: (i) => deviceLayerTensors(layers[i]!),
    release: disposeLayerTensors,
    head: () => ({
      norm: deviceToFloat32(norm, { transpose: false }) as tf.Tensor1D,
      lm_head: deviceToFloat32(lmHead, { transpose: false }) as tf.Tensor2D,
    }),
    dispose: () => {
      for (const l of layers) disposeDeviceLayer(l);
      disposeDeviceTensor(norm);
      disposeDeviceTensor(lmHead);
    },
  };
}

/** fp32 bytes of every decoder layer's weights. */
export function layerBytes(model: LoadedModel): number {
  let n = 0;
  for (const layer of model.layers) {
    for (const t of Object.values(layer)) n += 4 * t.shape.reduce((a: number, b: number) => a * b, 1);
  }
  return n;
}

// On a GPU, streaming would upload every layer's fp32 weights on every pass.
const keepsWeightsOnDevice = () => tf.getBackend() === 'webgpu';

/**
 * For inference (many passes): resident when all layers fit in `residentBytes` as fp32 (default
 * 1 GiB; on webgpu they are uploaded once and stay on the GPU); else on webgpu the device provider,
 * elsewhere streamed.
 */
export function weightsFor(model: LoadedModel, residentBytes = 2 ** 30): WeightProvider {
  if (layerBytes(model) <= residentBytes) return residentWeights(model);
  return keepsWeightsOnDevice() ? deviceWeights(model) : streamedWeights(model);
}

/**
 * For training (and the default of a single pass): one layer's fp32 weights at a time, the memory
 * model of training: on webgpu widened on the device from storage uploaded once (keep the provider
 * for the whole run), elsewhere streamed from the CPU.
 */
export function trainingWeights(model: LoadedModel): WeightProvider {
  return keepsWeightsOnDevice() ? deviceWeights(model) : streamedWeights(model);
}
