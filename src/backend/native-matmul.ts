/**
 * Native kernels for the wasm backend: `BatchMatMul` and `_FusedMatMul` run on the system's OpenBLAS
 * (through native/blas, on as many threads as the cores the process's workers leave it) or, without
 * it, on onnxruntime-node's MLAS GEMM (one thread); `Transpose` runs on the binding, else on
 * onnxruntime (the stock 2-D transpose runs at well under 1 GB/s: a 2048 x 172 one took longer than
 * the product it fed); with the binding also Exp, Softmax and mft's fused kernels
 * (binding-kernels.ts). They read the inputs from and write the output into the wasm heap, so no
 * tensor is copied.
 * With them come the heap kernels of heap-kernels.ts (Slice, GatherV2, SplitV, Identity, Cast), which need no
 * native library. The model code is unchanged: these are kernels registered for the backend. Small
 * products and transposes stay on the stock kernel, where a native call costs more than it saves.
 *
 * This uses onnxruntime-node's synchronous native binding (`dist/binding`, not its public async
 * API: tfjs kernels are synchronous), so package.json pins onnxruntime-node's exact version.
 */
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { LOG_SUM_EXP_GRAD_KERNEL, LOG_SUM_EXP_KERNEL } from '../model/cross-entropy.js';
import { DROPOUT_KERNEL } from '../model/dropout.js';
import { FLEXIBLE_MATMUL_FLAG } from '../model/matmul-form.js';
import { RMS_NORM_GRAD_KERNEL, RMS_NORM_KERNEL } from '../model/rms-norm.js';
import { SWIGLU_GRAD_KERNEL, SWIGLU_KERNEL } from '../model/swiglu.js';
import { ADAMW_KERNEL } from '../train/adamw.js';
import {
  NATIVE_MIN_EXP,
  nativeAdamW,
  nativeDropout,
  nativeExp,
  nativeLogSumExp,
  nativeLogSumExpGrad,
  nativeRmsNorm,
  nativeRmsNormGrad,
  nativeSoftmax,
  nativeSoftmaxGrad,
  nativeSwiGlu,
  nativeSwiGluGrad,
} from './binding-kernels.js';
import { type Blas, blasThreadsFor, heapOffset, mergedTranspose, openBlas } from './blas.js';
import { HEAP_KERNEL_NAMES, heapKernel } from './heap-kernels.js';
import { fusedMatMulModel, transposeModel } from './onnx-models.js';
import { SOFTMAX_GRAD } from './softmax-grad.js';

/** Products with fewer multiply-adds than this run on the stock kernel (onnxruntime costs some 30-50 us a call). */
export const NATIVE_MIN_MACS = 65536;

/** The same for OpenBLAS, whose calls cost a few microseconds. */
export const BLAS_MIN_MACS = 2048;

/** Transposes of fewer elements than this run on the stock kernel. */
export const NATIVE_MIN_TRANSPOSE = 16384;

/** The environment switch: `MFT_NATIVE_KERNELS=0` keeps the stock wasm kernels. */
export const NATIVE_ENV = 'MFT_NATIVE_KERNELS';

/** What runs the matrix products: `auto` is OpenBLAS when it opens, else onnxruntime. */
export type GemmChoice = 'auto' | 'openblas' | 'onnxruntime';

/** The environment switch for the product library (`MFT_GEMM=onnxruntime` skips OpenBLAS). */
export const GEMM_ENV = 'MFT_GEMM';

interface OrtTensor {
  readonly dims: readonly number[];
}
type OrtTensorCtor = new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
interface OrtSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor | null>, options: object): unknown;
}
interface OrtBinding {
  binding: { InferenceSession: new () => OrtSession };
  initOrt(): void;
}

interface WasmTensorData {
  memoryOffset: number;
}
interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): WasmTensorData };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

export interface NativeKernelStatus {
  /** Whether the native kernels are registered on the wasm backend. */
  active: boolean;
  /** The library running the matrix products (null: the stock kernels). */
  gemm: 'openblas' | 'onnxruntime' | null;
  /** What runs the matrix products, or why the native kernels are off. */
  detail: string;
}

let status: (NativeKernelStatus & { choice: GemmChoice }) | undefined;

interface Ort {
  Tensor: OrtTensorCtor;
  session(rankA: number, rankB: number, transA: boolean, transB: boolean): OrtSession;
  transposeSession(perm: readonly number[]): OrtSession;
  version: string;
}

function loadOrt(): Ort {
  const require = createRequire(import.meta.url);
  const version = (require('onnxruntime-node/package.json') as { version: string }).version;
  const { binding, initOrt } = require('onnxruntime-node/dist/binding') as OrtBinding;
  const { Tensor } = require('onnxruntime-common') as { Tensor: OrtTensorCtor };
  initOrt();
  const sessions = new Map<string, OrtSession>();
  const cached = (key: string, model: () => Uint8Array): OrtSession => {
    let s = sessions.get(key);
    if (!s) {
      const bytes = model();
      s = new binding.InferenceSession();
      s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        executionProviders: ['cpu'],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      sessions.set(key, s);
    }
    return s;
  };
  const session = (rankA: number, rankB: number, transA: boolean, transB: boolean): OrtSession =>
    cached(`matmul ${rankA},${rankB},${transA},${transB}`, () =>
      fusedMatMulModel(rankA, rankB, transA, transB),
    );
  const transposeSession = (perm: readonly number[]): OrtSession =>
    cached(`transpose ${perm.join(',')}`, () => transposeModel(perm));
  // Load the sessions now so that a broken library fails here, not inside a training step.
  session(2, 2, false, false);
  transposeSession([1, 0]);
  return { Tensor, session, transposeSession, version };
}

/** Output shape of `a x b` (tfjs BatchMatMul semantics), and the multiply-adds it takes. */
function productShape(
  a: readonly number[],
  b: readonly number[],
  transA: boolean,
  transB: boolean,
): { shape: number[]; macs: number } {
  const ra = a.length;
  const rb = b.length;
  const m = (transA ? a[ra - 1] : a[ra - 2]) as number;
  const k = (transA ? a[ra - 2] : a[ra - 1]) as number;
  const n = (transB ? b[rb - 2] : b[rb - 1]) as number;
  const batch = tf.backend_util.assertAndGetBroadcastShape(a.slice(0, -2), b.slice(0, -2));
  const shape = [...batch, m, n];
  return { shape, macs: tf.util.sizeFromShape(shape) * k };
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Element offsets of each product of a batched `a x b` (numpy broadcasting of the batch dims):
 * (a, b, out) triples, one per output batch, counted in matrices.
 */
function batchOffsets(
  batchA: readonly number[],
  batchB: readonly number[],
  batch: readonly number[],
): Float64Array {
  const rank = batch.length;
  const pad = (s: readonly number[]) => [...Array(rank - s.length).fill(1), ...s] as number[];
  const [pa, pb] = [pad(batchA), pad(batchB)];
  const total = tf.util.sizeFromShape(batch as number[]);
  const out = new Float64Array(3 * total);
  for (let t = 0; t < total; t++) {
    let rest = t;
    let ia = 0;
    let ib = 0;
    let strideA = 1;
    let strideB = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const i = rest % (batch[d] as number);
      rest = Math.floor(rest / (batch[d] as number));
      if (pa[d] !== 1) ia += i * strideA;
      if (pb[d] !== 1) ib += i * strideB;
      strideA *= pa[d] as number;
      strideB *= pb[d] as number;
    }
    out.set([ia, ib, t], 3 * t);
  }
  return out;
}

/** `a x b` on OpenBLAS, into `out`, all on the wasm heap. */
function blasProduct(
  blas: Blas,
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  out: tf.TensorInfo,
  transA: boolean,
  transB: boolean,
): void {
  const ra = a.shape.length;
  const m = out.shape[out.shape.length - 2] as number;
  const n = out.shape[out.shape.length - 1] as number;
  const k = (transA ? a.shape[ra - 2] : a.shape[ra - 1]) as number;
  const offsets = batchOffsets(a.shape.slice(0, -2), b.shape.slice(0, -2), out.shape.slice(0, -2));
  const [oa, ob, oc] = [heapOffset(backend, a), heapOffset(backend, b), heapOffset(backend, out)];
  for (let i = 0; i < offsets.length; i += 3) {
    offsets[i] = oa + (offsets[i] as number) * m * k;
    offsets[i + 1] = ob + (offsets[i + 1] as number) * k * n;
    offsets[i + 2] = oc + (offsets[i + 2] as number) * m * n;
  }
  blas.sgemm(new Float32Array(backend.wasm.HEAPU8.buffer), offsets, m, n, k, transA, transB);
}

/**
 * The native product of `a` and `b`, or undefined when the stock kernel should run (not float32,
 * empty, too small, or a rank the stock kernel handles differently).
 */
function nativeProduct(engine: Engine, minMacs: number, args: KernelArgs): tf.TensorInfo | undefined {
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  const transA = Boolean(args.attrs?.transposeA);
  const transB = Boolean(args.attrs?.transposeB);
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2)
    return undefined;
  const { shape, macs } = productShape(a.shape, b.shape, transA, transB);
  if (macs < minMacs) return undefined;
  const backend = args.backend as unknown as WasmBackend;
  const out = backend.makeOutput(shape, 'float32');
  // Views after makeOutput: allocating may have grown (and replaced) the heap.
  if (engine.blas) {
    blasProduct(engine.blas, backend, a, b, out, transA, transB);
    return out;
  }
  const ort = engine.ort as Ort; // registered only with one of the two
  const view = (t: tf.TensorInfo) => heapTensor(ort, backend, t);
  ort
    .session(a.shape.length, b.shape.length, transA, transB)
    .run({ A: view(a), B: view(b) }, { Y: view(out) }, {});
  return out;
}

/** A float32 view of tensor `t` on the heap, as an onnxruntime tensor (no copy). */
function heapTensor(ort: Ort, backend: WasmBackend, t: tf.TensorInfo): OrtTensor {
  const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
  const offset = backend.dataIdMap.get(t.dataId).memoryOffset;
  return new ort.Tensor('float32', new Float32Array(heap, offset, tf.util.sizeFromShape(t.shape)), t.shape);
}

/** The native transpose of `x`, or undefined when the stock kernel should run (not float32, small, a no-op). */
function nativeTranspose(engine: Engine, minSize: number, args: KernelArgs): tf.TensorInfo | undefined {
  const x = args.inputs.x as tf.TensorInfo;
  const perm = (args.attrs as unknown as { perm: number[] }).perm;
  if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) < minSize) return undefined;
  const merged = mergedTranspose(x.shape, perm);
  if (merged.dims.length < 2) return undefined; // a copy: the stock kernel does it
  const backend = args.backend as unknown as WasmBackend;
  const out = backend.makeOutput(
    perm.map((p) => x.shape[p] as number),
    'float32',
  );
  // Views after makeOutput: allocating may have grown (and replaced) the heap.
  if (engine.blas) {
    const at = (t: tf.TensorInfo) => heapOffset(backend, t);
    const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
    engine.blas.transpose(heap, at(x), at(out), Int32Array.from(merged.dims), Int32Array.from(merged.perm));
    return out;
  }
  const ort = engine.ort as Ort; // registered only with one of the two
  ort
    .transposeSession(perm)
    .run({ X: heapTensor(ort, backend, x) }, { Y: heapTensor(ort, backend, out) }, {});
  return out;
}

/** The native libraries the kernels call: products on `blas` when it is set, else on `ort`. */
interface Engine {
  blas: Blas | undefined;
  ort: Ort | undefined;
}

let engine: Engine = { blas: undefined, ort: undefined };
let stock: tf.KernelConfig[] = [];
let minMacs = NATIVE_MIN_MACS;
let minTranspose = NATIVE_MIN_TRANSPOSE;
const reasonOf = (err: unknown) => (err as Error)?.message?.split('\n')[0] ?? String(err);

/** `load()` once per thread: its value, or the one-line reason it failed. */
function once<T>(load: () => T): () => T | string {
  let result: T | string | undefined;
  return () => {
    if (result === undefined) {
      try {
        result = load();
      } catch (err) {
        result = reasonOf(err);
      }
    }
    return result;
  };
}

const tryOrt = once(loadOrt);
const tryBlas = once(openBlas);

/** Whether `_FusedMatMul`'s arguments are a plain product: a bias or activation stays on the stock kernel. */
const plainFused = (args: KernelArgs) =>
  args.inputs.bias == null && (args.attrs?.activation ?? 'linear') === 'linear';

function replace(configs: tf.KernelConfig[]): void {
  for (const c of configs) {
    tf.unregisterKernel(c.kernelName, c.backendName);
    tf.registerKernel(c);
  }
}

/** `k` running `native` first, and itself when `native` declines (undefined). */
function wrap(k: tf.KernelConfig, native: (args: KernelArgs) => tf.TensorInfo | undefined): tf.KernelConfig {
  return { ...k, kernelFunc: (args) => native(args) ?? k.kernelFunc(args) };
}

// Model code reads the flag with getFlags(), which holds it only once it is set.
tf.env().registerFlag(FLEXIBLE_MATMUL_FLAG, () => '');

const HEAP_NOTE = `${HEAP_KERNEL_NAMES.join(', ')} read the wasm heap in place`;

/**
 * Register the native kernels on the wasm backend. Off by `MFT_NATIVE_KERNELS=0`. Products run on
 * OpenBLAS when `gemm` (default `MFT_GEMM`, else auto) allows and it opens, else on onnxruntime;
 * a missing or broken onnxruntime-node leaves the stock kernels it would replace and one warning
 * line (the heap kernels need no library and stay). `minMacs` and `minTranspose` (tests: 0, so
 * that everything runs natively) are the sizes below which the stock kernels run.
 */
export function useNativeKernels(
  opts: { minMacs?: number; minTranspose?: number; gemm?: GemmChoice } = {},
): NativeKernelStatus {
  const choice = opts.gemm ?? gemmChoiceFromEnv();
  if (status && status.choice !== choice) useStockKernels();
  if (!status) status = { ...register(choice), choice };
  minMacs = opts.minMacs ?? (engine.blas ? BLAS_MIN_MACS : NATIVE_MIN_MACS);
  minTranspose = opts.minTranspose ?? NATIVE_MIN_TRANSPOSE;
  const { choice: _, ...shown } = status;
  return shown;
}

const warn = (what: string) => process.stderr.write(`mft: warning: ${what}\n`);

function gemmChoiceFromEnv(): GemmChoice {
  const v = process.env[GEMM_ENV];
  if (v === undefined || v === '' || v === 'auto' || v === 'openblas' || v === 'onnxruntime')
    return (v || 'auto') as GemmChoice;
  warn(
    `${GEMM_ENV}=${v} is not auto, openblas or onnxruntime; using auto (fix: unset it or use one of those)`,
  );
  return 'auto';
}

function register(choice: GemmChoice): NativeKernelStatus {
  if (process.env[NATIVE_ENV] === '0')
    return { active: false, gemm: null, detail: `stock wasm kernels (${NATIVE_ENV}=0)` };
  const names = ['BatchMatMul', '_FusedMatMul', 'Transpose', 'Exp', 'Softmax', ...HEAP_KERNEL_NAMES];
  const found = names.map((n) => tf.getKernel(n, 'wasm'));
  if (found.some((k) => k === undefined))
    return { active: false, gemm: null, detail: 'stock kernels (the wasm backend is not loaded)' };
  const [batch, fused, transpose, exp, softmax, ...heap] = found as tf.KernelConfig[];
  stock = found as tf.KernelConfig[];
  replace(heap.map(heapKernel));
  const blasOrReason = choice === 'onnxruntime' ? 'not asked for' : tryBlas();
  const blas = typeof blasOrReason === 'string' ? undefined : blasOrReason;
  if (!blas && choice === 'openblas') warn(`${GEMM_ENV}=openblas, but ${blasOrReason}`);
  // onnxruntime only stands in for the binding: not loaded when OpenBLAS runs everything.
  const ortOrReason = blas ? 'not needed' : tryOrt();
  const ort = typeof ortOrReason === 'string' ? undefined : ortOrReason;
  if (!blas && !ort) warn(`onnxruntime-node failed to load (${ortOrReason}); its native kernels are off`);
  engine = { blas, ort };
  if (!blas && !ort)
    return { active: false, gemm: null, detail: `stock wasm matrix kernels (${ortOrReason}); ${HEAP_NOTE}` };
  replace([
    wrap(batch as tf.KernelConfig, (args) => nativeProduct(engine, minMacs, args)),
    wrap(fused as tf.KernelConfig, (args) =>
      plainFused(args) ? nativeProduct(engine, minMacs, args) : undefined,
    ),
    wrap(transpose as tf.KernelConfig, (args) => nativeTranspose(engine, minTranspose, args)),
  ]);
  if (blas) {
    replace([
      wrap(exp as tf.KernelConfig, (args) => nativeExp(blas, args)),
      wrap(softmax as tf.KernelConfig, (args) => nativeSoftmax(blas, args)),
    ]);
    for (const [kernelName, run] of BINDING_KERNELS) {
      tf.registerKernel({
        kernelName,
        backendName: 'wasm',
        kernelFunc: (args) => run(blas, args as unknown as KernelArgs),
      });
    }
  }
  tf.env().set(FLEXIBLE_MATMUL_FLAG, 'wasm');
  if (blas && isMainThread) blas.threads(blasThreadsFor(1));
  const products = blas
    ? `BatchMatMul, _FusedMatMul on OpenBLAS (${blas.library}${blas.core ? `, ${blas.core} kernel` : ''}, ${blas.threads() || 'its own'} threads on the main thread, cores / workers in training workers; stock wasm kernels below ${BLAS_MIN_MACS} multiply-adds)`
    : `BatchMatMul, _FusedMatMul on onnxruntime-node ${ort?.version} (MLAS, 1 thread; stock wasm kernels below ${NATIVE_MIN_MACS} multiply-adds)`;
  const transposes = blas
    ? `Transpose from ${NATIVE_MIN_TRANSPOSE} elements, Exp and Softmax from ${NATIVE_MIN_EXP}, row logsumexp and its gradient, dropout, SwiGLU, RMSNorm, softmax's gradient and AdamW on mft's binding`
    : `Transpose on onnxruntime-node ${ort?.version} from ${NATIVE_MIN_TRANSPOSE} elements`;
  const noBlas = blas || choice === 'onnxruntime' ? '' : ` (OpenBLAS not used: ${blasOrReason})`;
  return {
    active: true,
    gemm: blas ? 'openblas' : 'onnxruntime',
    detail: `${products}${noBlas}; ${transposes}; ${HEAP_NOTE}`,
  };
}

/**
 * Share the cores between `workers` training workers: OpenBLAS's threads become cores / workers
 * (workers share the main thread's library). Called with 1 when the workers stop.
 */
export function shareNativeThreads(workers: number): void {
  if (engine.blas && isMainThread) engine.blas.threads(blasThreadsFor(workers));
}

/** mft's own kernels that the binding registers (model code falls back to tfjs ops without them). */
const BINDING_KERNELS: [string, (blas: Blas, args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]][] = [
  [SOFTMAX_GRAD, nativeSoftmaxGrad],
  [DROPOUT_KERNEL, nativeDropout],
  [LOG_SUM_EXP_KERNEL, nativeLogSumExp],
  [LOG_SUM_EXP_GRAD_KERNEL, nativeLogSumExpGrad],
  [SWIGLU_KERNEL, nativeSwiGlu],
  [SWIGLU_GRAD_KERNEL, nativeSwiGluGrad],
  [ADAMW_KERNEL, nativeAdamW],
  [RMS_NORM_KERNEL, nativeRmsNorm],
  [RMS_NORM_GRAD_KERNEL, nativeRmsNormGrad],
];

/** Put the stock wasm kernels back (tests compare the two). */
export function useStockKernels(): void {
  tf.env().set(FLEXIBLE_MATMUL_FLAG, '');
  for (const [name] of BINDING_KERNELS) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  replace(stock);
  stock = [];
  status = undefined;
}

/** What useNativeKernels did, without doing it. */
export function nativeKernelStatus(): NativeKernelStatus | undefined {
  if (!status) return undefined;
  const { choice: _, ...shown } = status;
  return shown;
}
