/**
 * Native matrix products for the wasm backend: `BatchMatMul` and `_FusedMatMul` run on
 * onnxruntime-node's MLAS GEMM (several times wasm's speed on one core), reading the inputs from and
 * writing the output into the wasm heap, so no tensor is copied. The model code is unchanged: these
 * are kernels registered for the backend. Small products stay on the stock kernel, where
 * onnxruntime's per-call overhead costs more than it saves.
 *
 * This uses onnxruntime-node's synchronous native binding (`dist/binding`, not its public async
 * API: tfjs kernels are synchronous), so package.json pins onnxruntime-node's exact version.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { fusedMatMulModel } from './onnx-matmul-model.js';

/** Products with fewer multiply-adds than this run on the stock kernel (onnxruntime costs some 30-50 us a call). */
export const NATIVE_MIN_MACS = 65536;

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
  version: string;
}

function loadOrt(): Ort {
  const require = createRequire(import.meta.url);
  const version = (require('onnxruntime-node/package.json') as { version: string }).version;
  const { binding, initOrt } = require('onnxruntime-node/dist/binding') as OrtBinding;
  const { Tensor } = require('onnxruntime-common') as { Tensor: OrtTensorCtor };
  initOrt();
  const sessions = new Map<string, OrtSession>();
  const session = (rankA: number, rankB: number, transA: boolean, transB: boolean): OrtSession => {
    const key = `${rankA},${rankB},${transA},${transB}`;
    let s = sessions.get(key);
    if (!s) {
      const model = fusedMatMulModel(rankA, rankB, transA, transB);
      s = new binding.InferenceSession();
      s.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, {
        executionProviders: ['cpu'],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      sessions.set(key, s);
    }
    return s;
  };
  // Load one session now so that a broken library fails here, not inside a training step.
  session(2, 2, false, false);
  return { Tensor, session, version };
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
  // Read the heap after makeOutput: allocating may have grown (and replaced) it.
  const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
  const view = (t: tf.TensorInfo) =>
    new ort.Tensor(
      'float32',
      new Float32Array(heap, backend.dataIdMap.get(t.dataId).memoryOffset, tf.util.sizeFromShape(t.shape)),
      t.shape,
    );
  ort
    .session(a.shape.length, b.shape.length, transA, transB)
    .run({ A: view(a), B: view(b) }, { Y: view(out) }, {});
  return out;
}

let ort: Ort | undefined;
let stock: tf.KernelConfig[] | undefined;
let minMacs = NATIVE_MIN_MACS;

/** Whether `_FusedMatMul`'s arguments are a plain product: a bias or activation stays on the stock kernel. */
const plainFused = (args: KernelArgs) =>
  args.inputs.bias == null && (args.attrs?.activation ?? 'linear') === 'linear';

function register(configs: tf.KernelConfig[]): void {
  for (const c of configs) {
    tf.unregisterKernel(c.kernelName, c.backendName);
    tf.registerKernel(c);
  }
}

/**
 * Register the native kernels on the wasm backend. Off by `MFT_NATIVE_KERNELS=0`; a missing or
 * broken onnxruntime-node leaves the stock kernels and one warning line. `minMacs` (tests: 0, so
 * every product runs natively) is the size below which the stock kernel runs.
 */
export function useNativeKernels(opts: { minMacs?: number } = {}): NativeKernelStatus {
  minMacs = opts.minMacs ?? NATIVE_MIN_MACS;
  if (status) return status;
  if (process.env[NATIVE_ENV] === '0') {
    status = { active: false, detail: `stock wasm kernels (${NATIVE_ENV}=0)` };
    return status;
  }
  const batch = tf.getKernel('BatchMatMul', 'wasm');
  const fused = tf.getKernel('_FusedMatMul', 'wasm');
  if (!batch || !fused) return { active: false, detail: 'stock kernels (the wasm backend is not loaded)' };
  try {
    ort = loadOrt();
  } catch (err) {
    const reason = (err as Error)?.message?.split('\n')[0] ?? String(err);
    status = { active: false, detail: `stock wasm kernels: onnxruntime-node failed to load (${reason})` };
    process.stderr.write(`mft: warning: native matrix kernels off, ${status.detail}\n`);
    return status;
  }
  const native = ort;
  stock = [batch, fused];
  const wrap = (k: tf.KernelConfig, plain: (args: KernelArgs) => boolean): tf.KernelConfig => ({
    ...k,
    kernelFunc: (args) =>
      (plain(args) ? nativeProduct(native, minMacs, args) : undefined) ?? k.kernelFunc(args),
  });
  register([wrap(batch, () => true), wrap(fused, plainFused)]);
  status = {
    active: true,
    detail: `BatchMatMul, _FusedMatMul on onnxruntime-node ${ort.version} (MLAS, 1 thread); stock wasm kernels below ${NATIVE_MIN_MACS} multiply-adds`,
  };
  return status;
}

/** Put the stock wasm kernels back (tests compare the two). */
export function useStockKernels(): void {
  if (stock && status?.active) register(stock);
  status = undefined;
}

/** What useNativeKernels did, without doing it. */
export function nativeKernelStatus(): NativeKernelStatus | undefined {
  return status;
}
