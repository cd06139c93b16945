/**
 * Where the decoder layers' weights come from while a pass runs. The base stays outside tfjs in
 * its storage format (`weights/`, `quant/`); a provider hands a layer to the compute as fp32 tensors
 * (`LayerTensors`, projections `[in, out]`) for as long as the layer computes:
 *   - streamed: widened from storage at every use and freed after it (one layer's fp32 weights
 *     at a time: the memory model of training and of large models);
 *   - resident: every layer widened once and kept for the whole pass (small models, many passes).
 * Another backend plugs in here: e.g. a provider that keeps the codes on the device and
 * dequantizes a layer there when it is asked for.
 */
import type { LayerTensors } from './decoder-layer.js';
import { disposeLayerTensors, type LoadedModel, layerTensors } from './loaded-model.js';

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

/** fp32 bytes of every decoder layer's weights. */
export function layerBytes(model: LoadedModel): number {
  let n = 0;
  for (const layer of model.layers) {
    for (const t of Object.values(layer)) n += 4 * t.shape.reduce((a: number, b: number) => a * b, 1);
  }
  return n;
}

/** Resident when all layers fit in `residentBytes` as fp32 (default 1 GiB), else streamed. */
export function weightsFor(model: LoadedModel, residentBytes = 2 ** 30): WeightProvider {
  return layerBytes(model) <= residentBytes ? residentWeights(model) : streamedWeights(model);
}
