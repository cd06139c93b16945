/**
 * Native kernels for the wasm backend: `BatchMatMul` and `_FusedMatMul` run on onnxruntime-node's
 * MLAS GEMM (several times wasm's speed on one core), and `Transpose` on its transpose (the stock
 * 2-D transpose runs at well under 1 GB/s: a 2048 x 172 one took longer than the product it fed),
 * reading the inputs from and writing the output into the wasm heap, so no tensor is copied. With
 * them come the heap kernels of heap-kernels.ts (Slice, SplitV, Identity, Cast), which need no
 * native library. The model code is unchanged: these are kernels registered for the backend. Small
 * products and transposes stay on the stock kernel, where onnxruntime's per-call overhead costs
 * more than it saves.
 *
 * This uses onnxruntime-node's synchronous native binding (`dist/binding`, not its public async
 * API: tfjs kernels are synchronous), so package.json pins onnxruntime-node's exact version.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { FLEXIBLE_MATMUL_FLAG } from '../model/matmul-form.js';
import { HEAP_KERNEL_NAMES, heapKernel } from './heap-kernels.js';
import { fusedMatMulModel, transposeModel } from './onnx-models.js';

/** Products with fewer multiply-adds than this run on the stock kernel (onnxruntime costs some 30-50 us a call). */
export const NATIVE_MIN_MACS = 65536;

/** Transposes of fewer elements than this run on the stock kernel. */
export const NATIVE_MIN_TRANSPOSE = 16384;

/** The environment switch: `MFT_NATIVE_KERNELS=0` keeps the stock wasm kernels. */
export const NATIVE_ENV = 'MFT_NATIVE_KERNELS';

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
  /** What runs the matrix products, or why the native kernels are off. */
  detail: string;
}

let status: NativeKernelStatus | undefined;

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
 * The native product of `a` and `b`, or undefined when the stock kernel should run (not float32,
 * empty, too small, or a rank the stock kernel handles differently).
 */
function nativeProduct(ort: Ort, minMacs: number, args: KernelArgs): tf.TensorInfo | undefined {
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
function nativeTranspose(ort: Ort, minSize: number, args: KernelArgs): tf.TensorInfo | undefined {
  const x = args.inputs.x as tf.TensorInfo;
  const perm = (args.attrs as unknown as { perm: number[] }).perm;
  if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) < minSize) return undefined;
  if (perm.every((p, i) => p === i)) return undefined;
  const backend = args.backend as unknown as WasmBackend;
  const out = backend.makeOutput(
    perm.map((p) => x.shape[p] as number),
    'float32',
  );
  // Views after makeOutput: allocating may have grown (and replaced) the heap.
  ort
    .transposeSession(perm)
    .run({ X: heapTensor(ort, backend, x) }, { Y: heapTensor(ort, backend, out) }, {});
  return out;
}

let ort: Ort | undefined;
let stock: tf.KernelConfig[] = [];
let minMacs = NATIVE_MIN_MACS;
let minTranspose = NATIVE_MIN_TRANSPOSE;

/** Whether `_FusedMatMul`'s arguments are a plain product: a bias or activation stays on the stock kernel. */
const plainFused = (args: KernelArgs) =>
  args.inputs.bias == null && (args.attrs?.activation ?? 'linear') === 'linear';

function register(configs: tf.KernelConfig[]): void {
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
 * Register the native kernels on the wasm backend. Off by `MFT_NATIVE_KERNELS=0`; a missing or
 * broken onnxruntime-node leaves the stock matrix kernels and one warning line (the heap kernels
 * need no library and stay). `minMacs` and `minTranspose` (tests: 0, so that everything runs
 * natively) are the sizes below which the stock kernels run.
 */
export function useNativeKernels(opts: { minMacs?: number; minTranspose?: number } = {}): NativeKernelStatus {
  minMacs = opts.minMacs ?? NATIVE_MIN_MACS;
  minTranspose = opts.minTranspose ?? NATIVE_MIN_TRANSPOSE;
  if (status) return status;
  if (process.env[NATIVE_ENV] === '0') {
    status = { active: false, detail: `stock wasm kernels (${NATIVE_ENV}=0)` };
    return status;
  }
  const names = ['BatchMatMul', '_FusedMatMul', 'Transpose', ...HEAP_KERNEL_NAMES];
  const found = names.map((n) => tf.getKernel(n, 'wasm'));
  if (found.some((k) => k === undefined))
    return { active: false, detail: 'stock kernels (the wasm backend is not loaded)' };
  const [batch, fused, transpose, ...heap] = found as tf.KernelConfig[];
  stock = found as tf.KernelConfig[];
  register(heap.map(heapKernel));
  try {
    ort = loadOrt();
  } catch (err) {
    const reason = (err as Error)?.message?.split('\n')[0] ?? String(err);
    status = {
      active: false,
      detail: `stock wasm matrix kernels: onnxruntime-node failed to load (${reason}); ${HEAP_NOTE}`,
    };
    process.stderr.write(
      `mft: warning: native matrix kernels off, onnxruntime-node failed to load (${reason})\n`,
    );
    return status;
  }
  const native = ort;
  register([
    wrap(batch as tf.KernelConfig, (args) => nativeProduct(native, minMacs, args)),
    wrap(fused as tf.KernelConfig, (args) =>
      plainFused(args) ? nativeProduct(native, minMacs, args) : undefined,
    ),
    wrap(transpose as tf.KernelConfig, (args) => nativeTranspose(native, minTranspose, args)),
  ]);
  tf.env().set(FLEXIBLE_MATMUL_FLAG, 'wasm');
  status = {
    active: true,
    detail: `BatchMatMul, _FusedMatMul, Transpose on onnxruntime-node ${ort.version} (MLAS, 1 thread), stock wasm kernels below ${NATIVE_MIN_MACS} multiply-adds / ${NATIVE_MIN_TRANSPOSE} elements; ${HEAP_NOTE}`,
  };
  return status;
}

/** Put the stock wasm kernels back (tests compare the two). */
export function useStockKernels(): void {
  tf.env().set(FLEXIBLE_MATMUL_FLAG, '');
  register(stock);
  stock = [];
  status = undefined;
}

/** What useNativeKernels did, without doing it. */
export function nativeKernelStatus(): NativeKernelStatus | undefined {
  return status;
}
