/**
 * Data-movement kernels for the wasm backend that read their input in place on the wasm heap.
 * tfjs-backend-wasm 4.22's `Slice` (and `SplitV`, which runs one Slice per piece) first copies its
 * whole input out of the heap (`readSync`), so splitting a tensor into n pieces copies it n times;
 * its `Identity` copies the data, and the engine runs an Identity on every tensor a gradient saves
 * for the backward pass; its `GatherV2` indexes every element. Measured on a training step: SplitV
 * and Slice 31% of the 56M step, Identity 7% of the main-job step, GatherV2 3% of a worker's step
 * at the main shape. These kernels give the same values (they copy the same elements or
 * share the same buffer), so they are exact replacements.
 */
import * as tf from '@tensorflow/tfjs';

/** What these kernels use of the wasm backend (`BackendWasm` of tfjs-backend-wasm). */
export interface HeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: object): void;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];
type HeapArray = Float32Array | Int32Array | Uint8Array;

/** A view of tensor `t` on the heap (no copy); take it after the last makeOutput, which may grow the heap. */
function heapView(backend: HeapBackend, t: tf.TensorInfo): HeapArray {
  const buffer = backend.wasm.HEAPU8.buffer;
  const offset = backend.dataIdMap.get(t.dataId).memoryOffset;
  const size = tf.util.sizeFromShape(t.shape);
  if (t.dtype === 'float32') return new Float32Array(buffer, offset, size);
  if (t.dtype === 'int32') return new Int32Array(buffer, offset, size);
  return new Uint8Array(buffer, offset, size);
}

const onHeap = (t: tf.TensorInfo) => t.dtype === 'float32' || t.dtype === 'int32' || t.dtype === 'bool';

/** The same buffer under a second reference, as the backend's Reshape does (tensors are immutable). */
function share(backend: HeapBackend, x: tf.TensorInfo, dtype: tf.DataType = x.dtype): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype };
}

/** Copy the box `begin .. begin + size` of `x` into a new tensor, one contiguous run at a time. */
function sliceBox(backend: HeapBackend, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const src = heapView(backend, x);
  const dst = heapView(backend, out);
  const rank = size.length;
  const strides = tf.util.computeStrides(x.shape);
  // The innermost run: the last axis, widened over every axis whose trailing axes are all whole.
  let k = rank - 1;
  let run = size[k] as number;
  while (k > 0 && size[k] === x.shape[k]) {
    k--;
    run *= size[k] as number;
  }
  let base = 0;
  for (let d = 0; d < rank; d++) base += (begin[d] as number) * (strides[d] ?? 1);
  const outer = size.slice(0, k);
  const count = outer.reduce((a, b) => a * b, 1);
  const index = new Array<number>(k).fill(0);
  let o = 0;
  for (let n = 0; n < count; n++) {
    let from = base;
    for (let d = 0; d < k; d++) from += (index[d] as number) * (strides[d] as number);
    if (run >= 16) dst.set(src.subarray(from, from + run), o);
    else for (let i = 0; i < run; i++) dst[o + i] = src[from + i] as number;
    o += run;
    for (let d = k - 1; d >= 0; d--) {
      index[d] = (index[d] as number) + 1;
      if ((index[d] as number) < (outer[d] as number)) break;
      index[d] = 0;
    }
  }
  return out;
}

function slice(args: KernelArgs, stock: tf.KernelFunc): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const attrs = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
  if (!onHeap(x) || tf.util.sizeFromShape(size) === 0) return stock(args);
  return sliceBox(args.backend as unknown as HeapBackend, x, begin, size);
}

function splitV(args: KernelArgs, stock: tf.KernelFunc): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  if (!onHeap(x) || tf.util.sizeFromShape(x.shape) === 0) return stock(args);
  const attrs = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number | number[] };
  const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0] as number;
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
  const backend = args.backend as unknown as HeapBackend;
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const piece = s === 0 ? backend.makeOutput(size, x.dtype) : sliceBox(backend, x, [...begin], size);
    begin[axis] = (begin[axis] as number) + s;
    return piece;
  });
}

function identity(args: KernelArgs, stock: tf.KernelFunc): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  return onHeap(x) ? share(args.backend as unknown as HeapBackend, x) : stock(args);
}

/** A cast to the tensor's own dtype shares it; a real conversion runs the stock kernel. */
function cast(args: KernelArgs, stock: tf.KernelFunc): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const dtype = (args.attrs as unknown as { dtype: tf.DataType }).dtype;
  return onHeap(x) && dtype === x.dtype ? share(args.backend as unknown as HeapBackend, x) : stock(args);
}

/**
 * Rows of `x` (axis 0, no batch dims) picked by int32 `indices`, one row copy each; the stock
 * kernel, a loop over every element, takes anything else and out-of-range indices.
 */
function gatherRows(args: KernelArgs, stock: tf.KernelFunc): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const indices = args.inputs.indices as tf.TensorInfo;
  const attrs = args.attrs as unknown as { axis: number; batchDims: number };
  const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0];
  const n = tf.util.sizeFromShape(indices.shape);
  const rows = x.shape[0] as number;
  if (!onHeap(x) || indices.dtype !== 'int32' || axis !== 0 || attrs.batchDims !== 0) return stock(args);
  if (n === 0 || tf.util.sizeFromShape(x.shape) === 0) return stock(args);
  const backend = args.backend as unknown as HeapBackend;
  const picked = heapView(backend, indices);
  for (let i = 0; i < n; i++) {
    const r = picked[i] as number;
    if (r < 0 || r >= rows) return stock(args);
  }
  const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
  const [src, idx, dst] = [heapView(backend, x), heapView(backend, indices), heapView(backend, out)];
  const width = tf.util.sizeFromShape(x.shape) / rows;
  for (let i = 0; i < n; i++) {
    const from = (idx[i] as number) * width;
    dst.set(src.subarray(from, from + width), i * width);
  }
  return out;
}

const KERNELS: Record<string, (args: KernelArgs, stock: tf.KernelFunc) => tf.TensorInfo | tf.TensorInfo[]> = {
  Slice: slice,
  GatherV2: gatherRows,
  SplitV: splitV,
  Identity: identity,
  Cast: cast,
};

/** Names of the kernels this module replaces. */
export const HEAP_KERNEL_NAMES = Object.keys(KERNELS);

/**
 * The replacement of the stock wasm kernel `stock` (one of HEAP_KERNEL_NAMES), which it falls back
 * to for what it does not handle (strings, empty tensors, real casts).
 */
export function heapKernel(stock: tf.KernelConfig): tf.KernelConfig {
  const run = KERNELS[stock.kernelName];
  if (!run) throw new Error(`no heap kernel for ${stock.kernelName}`);
  return { ...stock, kernelFunc: (args) => run(args, stock.kernelFunc) };
}
