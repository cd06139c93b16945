/**
 * The wasm kernels of mft's native binding besides products and transposes (native-matmul.ts):
 * Exp, logsumexp of rows (src/model/cross-entropy.ts), the LoRA input's dropout (src/model/dropout.ts) and softmax's gradient
 * (softmax-grad.ts), each one pass over the wasm heap, vectorised and cut across threads.
 */
import type * as tf from '@tensorflow/tfjs';
import { type Blas, heapOffset, type WasmHeapBackend } from './blas.js';

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Elements from which Exp runs on the binding rather than wasm's scalar loop. */
export const NATIVE_MIN_EXP = 4096;

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * A float32 output of `shape` and what a binding call needs: the heap view (taken after the
 * allocation, which may grow and replace the heap) and each tensor's element offset.
 */
function heapCall(args: KernelArgs, shape: number[]) {
  const backend = args.backend as unknown as WasmHeapBackend;
  const out = backend.makeOutput(shape, 'float32') as tf.TensorInfo;
  const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
  return { out, heap, at: (t: tf.TensorInfo) => heapOffset(backend, t) };
}

/** `exp(x)`, or undefined for the stock kernel (not float32, small). */
export function nativeExp(blas: Blas, args: KernelArgs): tf.TensorInfo | undefined {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype !== 'float32' || size(x.shape) < NATIVE_MIN_EXP) return undefined;
  const { out, heap, at } = heapCall(args, x.shape);
  blas.exp(heap, at(x), at(out), size(x.shape));
  return out;
}

/** logsumexp of each row of `z` `[M, V]`. */
export function nativeLogSumExp(blas: Blas, args: KernelArgs): tf.TensorInfo {
  const z = args.inputs.z as tf.TensorInfo;
  const [rows, cols] = z.shape as [number, number];
  const { out, heap, at } = heapCall(args, [rows]);
  blas.logSumExp(heap, at(z), at(out), rows, cols);
  return out;
}

/** Dropout: x times its mask, drawn in place. */
export function nativeDropout(blas: Blas, args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const { rate, seed, skip } = args.attrs as unknown as { rate: number; seed: number; skip: number };
  const { out, heap, at } = heapCall(args, x.shape);
  blas.dropout(heap, at(x), at(out), size(x.shape), rate, seed, skip);
  return out;
}

/** Softmax's gradient over the last axis. */
export function nativeSoftmaxGrad(blas: Blas, args: KernelArgs): tf.TensorInfo {
  const y = args.inputs.y as tf.TensorInfo;
  const dy = args.inputs.dy as tf.TensorInfo;
  const { out, heap, at } = heapCall(args, y.shape);
  const cols = y.shape[y.shape.length - 1] as number;
  blas.softmaxGrad(heap, at(y), at(dy), at(out), size(y.shape) / cols, cols);
  return out;
}
