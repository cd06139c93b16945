/**
 * The wasm kernels of mft's native binding besides products and transposes (native-matmul.ts):
 * Exp, Softmax, logsumexp of rows and its gradient (src/model/cross-entropy.ts), the LoRA input's
 * dropout (src/model/dropout.ts), SwiGLU's product and its gradient (src/model/swiglu.ts), RMSNorm
 * and its gradient (src/model/rms-norm.ts), softmax's gradient (softmax-grad.ts) and the AdamW
 * update (src/train/adamw.ts), each one pass over the wasm heap (softmax: three), vectorised and
 * cut across threads.
 */
import type * as tf from '@tensorflow/tfjs';
import type { AdamWKernelAttrs } from '../train/adamw.js';
import { type Blas, heapOffset, type WasmHeapBackend } from './blas.js';

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Elements from which Exp and Softmax run on the binding rather than wasm's own kernels. */
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

/** Softmax over the last axis, or undefined for the stock kernel (not float32, small, another axis). */
export function nativeSoftmax(blas: Blas, args: KernelArgs): tf.TensorInfo | undefined {
  const x = args.inputs.logits as tf.TensorInfo;
  const { dim } = args.attrs as unknown as { dim: number };
  const cols = x.shape[x.shape.length - 1] as number;
  const lastAxis = dim === -1 || dim === x.shape.length - 1;
  if (x.dtype !== 'float32' || !lastAxis || size(x.shape) < NATIVE_MIN_EXP) return undefined;
  const { out, heap, at } = heapCall(args, x.shape);
  blas.softmax(heap, at(x), at(out), size(x.shape) / cols, cols);
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

/** The gradient of row logsumexp: `dy[r] * exp(z - lse[r])` `[M, V]`. */
export function nativeLogSumExpGrad(blas: Blas, args: KernelArgs): tf.TensorInfo {
  const { z, lse, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, cols] = z!.shape as [number, number];
  const { out, heap, at } = heapCall(args, [rows, cols]);
  blas.logSumExpGrad(heap, at(z!), at(lse!), at(dy!), at(out), rows, cols);
  return out;
}

/** SwiGLU's product `silu(gate) * up`. */
export function nativeSwiGlu(blas: Blas, args: KernelArgs): tf.TensorInfo {
  const { gate, up } = args.inputs as Record<string, tf.TensorInfo>;
  const { out, heap, at } = heapCall(args, gate!.shape);
  blas.swiglu(heap, at(gate!), at(up!), at(out), size(gate!.shape));
  return out;
}

/** SwiGLU's gradient: `[dGate, dUp]`. */
export function nativeSwiGluGrad(blas: Blas, args: KernelArgs): tf.TensorInfo[] {
  const { gate, up, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const backend = args.backend as unknown as WasmHeapBackend;
  const dGate = backend.makeOutput(gate!.shape, 'float32') as tf.TensorInfo;
  const { out: dUp, heap, at } = heapCall(args, gate!.shape);
  blas.swigluGrad(heap, at(gate!), at(up!), at(dy!), at(dGate), at(dUp), size(gate!.shape));
  return [dGate, dUp];
}

/** RMSNorm over the last axis. */
export function nativeRmsNorm(blas: Blas, args: KernelArgs): tf.TensorInfo {
  const { x, w } = args.inputs as Record<string, tf.TensorInfo>;
  const { eps } = args.attrs as unknown as { eps: number };
  const cols = w!.shape[0] as number;
  const { out, heap, at } = heapCall(args, x!.shape);
  blas.rmsNorm(heap, at(x!), at(w!), at(out), size(x!.shape) / cols, cols, eps);
  return out;
}

/** RMSNorm's gradient for x. */
export function nativeRmsNormGrad(blas: Blas, args: KernelArgs): tf.TensorInfo {
  const { x, w, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const { eps } = args.attrs as unknown as { eps: number };
  const cols = w!.shape[0] as number;
  const { out, heap, at } = heapCall(args, x!.shape);
  blas.rmsNormGrad(heap, at(x!), at(w!), at(dy!), at(out), size(x!.shape) / cols, cols, eps);
  return out;
}

/** One AdamW update: `[p, m, v]` after it. */
export function nativeAdamW(blas: Blas, args: KernelArgs): tf.TensorInfo[] {
  const { p, g, m, v } = args.inputs as Record<string, tf.TensorInfo>;
  const a = args.attrs as unknown as AdamWKernelAttrs;
  const backend = args.backend as unknown as WasmHeapBackend;
  const p1 = backend.makeOutput(p!.shape, 'float32') as tf.TensorInfo;
  const m1 = backend.makeOutput(p!.shape, 'float32') as tf.TensorInfo;
  const { out: v1, heap, at } = heapCall(args, p!.shape);
  const [b1, b2] = [a.beta1, a.beta2];
  blas.adamw(
    heap,
    at(p!),
    at(g!),
    at(m!),
    at(v!),
    at(p1),
    at(m1),
    at(v1),
    size(p!.shape),
    a.decay,
    b1,
    1 - b1,
    b2,
    1 - b2,
    a.bc2Sqrt,
    a.eps,
    a.stepSize,
  );
  return [p1, m1, v1];
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
