/**
 * Frozen weights kept on the tfjs device in their storage format (bf16 / f16 as int32 words, NF4 /
 * int8 codes as words plus float32 absmaxes, fp32 as is), uploaded once, and widened to fp32 there
 * when a layer is asked for: a pass moves no weight bytes from the CPU. The widening runs as the
 * kernels of `weights/device-kernels.ts`, registered per backend by `backend/` (WGSL on webgpu).
 */
import * as tf from '@tensorflow/tfjs';
import { type BlockAbsmax, Int8Tensor, Nf4Tensor } from '../quant/index.js';
import {
  DEQUANTIZE_ABSMAX_KERNEL,
  DEQUANTIZE_KERNEL,
  type DequantizeAbsmaxAttrs,
  type DequantizeAttrs,
  type FrozenTensor,
  StoredTensor,
  toWords,
} from '../weights/index.js';
import type { LayerTensorName, LayerTensors } from './decoder-layer.js';
import type { LayerWeights } from './loaded-model.js';
import { projectionLayout } from './matmul-form.js';

/** Block absmaxes on the device: float32, or double-quantized (codes as words + float32 scales). */
type DeviceAbsmax =
  | { values: tf.Tensor1D }
  | { codes: tf.Tensor1D; scales: tf.Tensor1D; attrs: DequantizeAbsmaxAttrs };

/** One frozen weight on the device, in its storage format. */
export interface DeviceTensor {
  readonly shape: readonly number[];
  /** fp32 storage: the values themselves. */
  readonly values?: tf.Tensor;
  /** Word storage: the words, the absmaxes of NF4 / int8, and how to read them. */
  readonly words?: tf.Tensor1D;
  readonly absmax?: DeviceAbsmax;
  readonly attrs?: DequantizeAttrs;
}

function uploadAbsmax(absmax: BlockAbsmax): DeviceAbsmax {
  if (absmax instanceof Float32Array) return { values: tf.keep(tf.tensor1d(absmax)) };
  const { codes, scales, offset, size, blockSize } = absmax;
  return {
    codes: tf.keep(tf.tensor1d(toWords(codes), 'int32')),
    scales: tf.keep(tf.tensor1d(scales)),
    attrs: { size, blockSize, offset },
  };
}

/**
 * Upload one frozen weight in its storage format (no fp32 copy of a 16-bit or quantized weight).
 * The tensors are kept (tf.keep) until `disposeDeviceTensor`, even when made inside a tf.tidy.
 * @example const d = uploadFrozen(model.layers[0].q_proj); const w = deviceToFloat32(d, { transpose: true });
 */
export function uploadFrozen(t: FrozenTensor): DeviceTensor {
  const [rows, cols] = t.shape.length === 2 ? (t.shape as [number, number]) : [1, t.shape[0] ?? 1];
  const words = (w: Int32Array) => tf.keep(tf.tensor1d(w, 'int32'));
  if (t instanceof StoredTensor) {
    if (t.storage === 'f32') return { shape: t.shape, values: tf.keep(tf.tensor(t.data, [...t.shape])) };
    const attrs = { format: t.storage, rows, cols, transpose: false, blockSize: 0 };
    return { shape: t.shape, words: words(toWords(t.data as Uint16Array)), attrs };
  }
  if (t instanceof Nf4Tensor || t instanceof Int8Tensor) {
    const absmax = uploadAbsmax(t.absmax);
    const attrs = { format: t.storage, rows, cols, transpose: false, blockSize: t.blockSize };
    return { shape: t.shape, words: words(toWords(t.codes)), absmax, attrs };
  }
  throw new Error(`uploadFrozen: "${t.name}" has storage ${t.storage}, which has no device layout`);
}

/**
 * The fp32 values of a device weight, computed on the device: `[rows, cols]`, or `W^T [cols, rows]`
 * with `transpose`. The caller disposes the result.
 */
export function deviceToFloat32(d: DeviceTensor, opts: { transpose: boolean }): tf.Tensor {
  const { transpose } = opts;
  if (d.values) return transpose ? tf.transpose(d.values) : tf.clone(d.values);
  const attrs = { ...d.attrs!, transpose };
  const shape = transpose ? [attrs.cols, attrs.rows] : [...d.shape];
  return tf.tidy(() => {
    const inputs: tf.NamedTensorMap = { words: d.words! };
    const a = d.absmax;
    if (a) {
      inputs.absmax =
        'values' in a
          ? a.values
          : run(DEQUANTIZE_ABSMAX_KERNEL, { codes: a.codes, scales: a.scales }, a.attrs);
    }
    return tf.reshape(run(DEQUANTIZE_KERNEL, inputs, attrs), shape);
  });
}

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;
}

/** Free what `uploadFrozen` put on the device. */
export function disposeDeviceTensor(d: DeviceTensor): void {
  const a = d.absmax;
  tf.dispose([d.values, d.words, ...(a ? Object.values(a) : [])].filter((x) => x instanceof tf.Tensor));
}

/** One decoder layer's weights on the device, by HF name. */
export type DeviceLayer = Partial<Record<LayerTensorName, DeviceTensor>>;

/** Upload one decoder layer's weights. */
export function uploadLayer(l: LayerWeights): DeviceLayer {
  const layer: DeviceLayer = {};
  for (const [name, t] of Object.entries(l) as [LayerTensorName, FrozenTensor | undefined][]) {
    if (t) layer[name] = uploadFrozen(t);
  }
  return layer;
}

/** Layer tensors as `layerTensors` makes them (in its projection layout), widened on the device. */
export function deviceLayerTensors(layer: DeviceLayer): LayerTensors {
  const layout = projectionLayout();
  const w: Partial<Record<LayerTensorName, tf.Tensor>> = {};
  for (const [name, d] of Object.entries(layer) as [LayerTensorName, DeviceTensor | undefined][]) {
    if (d) w[name] = deviceToFloat32(d, { transpose: d.shape.length === 2 && layout === 'in_out' });
  }
  return { ...w, layout } as LayerTensors;
}

/** Free what `uploadLayer` put on the device. */
export function disposeDeviceLayer(layer: DeviceLayer): void {
  for (const d of Object.values(layer)) if (d) disposeDeviceTensor(d);
}
