/**
 * The system BLAS (OpenBLAS) through mft's small N-API binding (native/blas, built by `npm ci` when a
 * C compiler is there). The library is opened at run time, so a machine without it, or without the
 * built binding, keeps onnxruntime's kernels; `MFT_BLAS_LIBRARY` names another CBLAS library.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/** The environment variable naming the CBLAS shared library to open (else OpenBLAS's usual names). */
export const BLAS_LIBRARY_ENV = 'MFT_BLAS_LIBRARY';

/** Where OpenBLAS usually is: Debian/Ubuntu (libopenblas0), Fedora, Homebrew. */
const OPENBLAS_NAMES = [
  'libopenblas.so.0',
  'libopenblas.so',
  'libopenblas.dylib',
  '/opt/homebrew/opt/openblas/lib/libopenblas.dylib',
  '/usr/local/opt/openblas/lib/libopenblas.dylib',
];

/** AdamW's scalars as the binding takes them: decay, b1, 1 - b1, b2, 1 - b2, bc2, eps, step. */
export type AdamWScalars = [number, number, number, number, number, number, number, number];

interface Binding {
  open(path: string): string;
  threads(n?: number): number;
  sgemm(
    heap: Float32Array,
    offsets: Float64Array,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
  ): void;
  transpose(
    heap: Float32Array,
    inOffset: number,
    outOffset: number,
    dims: Int32Array,
    perm: Int32Array,
  ): void;
  exp(heap: Float32Array, inOffset: number, outOffset: number, n: number): void;
  logSumExp(heap: Float32Array, inOffset: number, outOffset: number, rows: number, cols: number): void;
  logSumExpGrad(
    heap: Float32Array,
    zOffset: number,
    lseOffset: number,
    dyOffset: number,
    outOffset: number,
    rows: number,
    cols: number,
  ): void;
  softmax(heap: Float32Array, inOffset: number, outOffset: number, rows: number, cols: number): void;
  swiglu(heap: Float32Array, gateOffset: number, upOffset: number, outOffset: number, n: number): void;
  swigluGrad(
    heap: Float32Array,
    gateOffset: number,
    upOffset: number,
    dyOffset: number,
    dGateOffset: number,
    dUpOffset: number,
    n: number,
  ): void;
  dropout(
    heap: Float32Array,
    inOffset: number,
    outOffset: number,
    n: number,
    rate: number,
    seed: number,
    skip: number,
  ): void;
  rmsNorm(
    heap: Float32Array,
    xOffset: number,
    wOffset: number,
    outOffset: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  rmsNormGrad(
    heap: Float32Array,
    xOffset: number,
    wOffset: number,
    dyOffset: number,
    dxOffset: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  adamw(
    heap: Float32Array,
    pOffset: number,
    gOffset: number,
    mOffset: number,
    vOffset: number,
    pOutOffset: number,
    mOutOffset: number,
    vOutOffset: number,
    n: number,
    ...scalars: AdamWScalars
  ): void;
  softmaxGrad(
    heap: Float32Array,
    yOffset: number,
    dyOffset: number,
    outOffset: number,
    rows: number,
    cols: number,
  ): void;
}

export interface Blas {
  /** The library opened, as named (`libopenblas.so.0`). */
  library: string;
  /** OpenBLAS's kernel for this CPU (`SkylakeX`), or '' for another library. */
  core: string;
  /**
   * For each (a, b, c) triple of element offsets into `heap`: c = op(a) op(b), row-major, where
   * op(a) is m x k and op(b) is k x n.
   */
  sgemm: Binding['sgemm'];
  /**
   * out = in with its axes permuted, both element offsets into `heap`; `dims` and `perm` as
   * `mergedTranspose` gives them (rank 2 to 8).
   */
  transpose: Binding['transpose'];
  /** Softmax's gradient over rows of `cols` values: `dy * y - sum(dy * y) * y`, element offsets into `heap`. */
  softmaxGrad: Binding['softmaxGrad'];
  /** `n` values of `exp`, element offsets into `heap` (about 1 ulp; 0 below -87.33, the normal floats' end). */
  exp: Binding['exp'];
  /** logsumexp of rows of `cols` values into `rows` values, element offsets into `heap`. */
  logSumExp: Binding['logSumExp'];
  /** Its gradient: `dy[r] * exp(z[r, c] - lse[r])`. */
  logSumExpGrad: Binding['logSumExpGrad'];
  /** Softmax of rows of `cols` values. */
  softmax: Binding['softmax'];
  /** `n` values of SwiGLU's product `silu(gate) * up` (src/model/swiglu.ts). */
  swiglu: Binding['swiglu'];
  /** Its gradient for `gate` and `up`. */
  swigluGrad: Binding['swigluGrad'];
  /** RMSNorm of rows of `cols` values by `w` (src/model/rms-norm.ts). */
  rmsNorm: Binding['rmsNorm'];
  /** Its gradient for x. */
  rmsNormGrad: Binding['rmsNormGrad'];
  /** One AdamW update of `n` values (src/train/adamw.ts), into three new outputs. */
  adamw: Binding['adamw'];
  /** `n` values of x times values `[skip, skip + n)` of the dropout mask of `seed` (src/model/dropout.ts). */
  dropout: Binding['dropout'];
  /**
   * Set how many threads one large product or transpose is cut across, and return it (OpenBLAS,
   * which the binding keeps single-threaded; 0 for another library, which threads itself).
   */
  threads(n?: number): number;
}

/** The built binding (the package root is two levels above this module, in src/ and in dist/). */
function loadBinding(): Binding {
  const path = fileURLToPath(new URL('../../native/blas/build/Release/mft_blas.node', import.meta.url));
  if (!existsSync(path)) throw new Error('the native BLAS binding is not built (npm run build:native)');
  return checkBinding(createRequire(import.meta.url)(path) as object);
}

/** Every function of `Binding`, by name (the Record makes the compiler check the list is whole). */
const BINDING_FUNCTIONS: Record<keyof Binding, true> = {
  open: true,
  threads: true,
  sgemm: true,
  transpose: true,
  exp: true,
  logSumExp: true,
  logSumExpGrad: true,
  softmax: true,
  swiglu: true,
  swigluGrad: true,
  adamw: true,
  rmsNorm: true,
  rmsNormGrad: true,
  dropout: true,
  softmaxGrad: true,
};

/**
 * `binding` as a `Binding`, or an error naming what it lacks: a binding built from older sources
 * (a checkout updated without `npm run build:native`) lacks the newer kernels.
 */
export function checkBinding(binding: object): Binding {
  const missing = Object.keys(BINDING_FUNCTIONS).filter(
    (name) => typeof (binding as Record<string, unknown>)[name] !== 'function',
  );
  if (missing.length > 0) {
    throw new Error(
      `the native BLAS binding is out of date (it has no ${missing.join(', ')}; npm run build:native rebuilds it)`,
    );
  }
  return binding as Binding;
}

let opened: Blas | undefined;

/**
 * Open the BLAS (once per process; worker threads share it). Throws with the reason when the
 * binding or the library is missing.
 */
export function openBlas(): Blas {
  if (opened) return opened;
  const binding = loadBinding();
  const named = process.env[BLAS_LIBRARY_ENV];
  const reasons: string[] = [];
  for (const library of named ? [named] : OPENBLAS_NAMES) {
    try {
      const core = binding.open(library);
      opened = {
        library,
        core,
        sgemm: binding.sgemm,
        transpose: binding.transpose,
        softmaxGrad: binding.softmaxGrad,
        exp: binding.exp,
        logSumExp: binding.logSumExp,
        logSumExpGrad: binding.logSumExpGrad,
        softmax: binding.softmax,
        swiglu: binding.swiglu,
        swigluGrad: binding.swigluGrad,
        adamw: binding.adamw,
        rmsNorm: binding.rmsNorm,
        rmsNormGrad: binding.rmsNormGrad,
        dropout: binding.dropout,
        threads: binding.threads,
      };
      return opened;
    } catch (err) {
      reasons.push((err as Error).message.split('\n')[0] ?? String(err));
    }
  }
  throw new Error(
    named
      ? `${BLAS_LIBRARY_ENV}=${named} did not open: ${reasons[0]}`
      : 'no OpenBLAS library found (apt-get install libopenblas0-pthread, or set MFT_BLAS_LIBRARY)',
  );
}

/**
 * The threads a product is cut across in a process running `workers` training workers: the cores
 * shared among them (all cores for the main thread alone). `OPENBLAS_NUM_THREADS`, when set, wins.
 */
export function blasThreadsFor(workers: number, cores = availableParallelism()): number {
  const fixed = Number(process.env.OPENBLAS_NUM_THREADS);
  if (Number.isInteger(fixed) && fixed > 0) return fixed;
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

/**
 * A transpose in its fewest axes: size-1 axes dropped, and input axes that stay neighbours in the
 * output merged into one (they are copied as one). Rank 0 or 1 means the data is copied as it is.
 * @example mergedTranspose([4, 256, 8, 64], [0, 2, 1, 3]) // { dims: [4, 256, 8, 64], perm: [0, 2, 1, 3] }
 * @example mergedTranspose([2, 3, 4], [1, 2, 0]) // { dims: [2, 12], perm: [1, 0] }
 */
export function mergedTranspose(
  shape: readonly number[],
  perm: readonly number[],
): { dims: number[]; perm: number[] } {
  const kept = shape.flatMap((d, i) => (d === 1 ? [] : [i])); // input axes of size > 1
  const order = perm.filter((a) => shape[a] !== 1).map((a) => kept.indexOf(a)); // output order, as ranks
  const groups: number[][] = []; // runs of consecutive input axes, in output order
  for (const a of order) {
    const g = groups.at(-1);
    if (g && (g.at(-1) as number) + 1 === a) g.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((x, y) => (x[0] as number) - (y[0] as number));
  const dims = byInput.map((g) => g.reduce((n, a) => n * (shape[kept[a] as number] as number), 1));
  return { dims, perm: groups.map((g) => byInput.indexOf(g)) };
}

/** What the binding's kernels read of the wasm backend (`BackendWasm` of tfjs-backend-wasm). */
export interface WasmHeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): { dataId: object; shape: number[]; dtype: 'float32' };
}

/** Tensor `t`'s position on the wasm heap, in float32 elements. */
export function heapOffset(backend: Pick<WasmHeapBackend, 'dataIdMap'>, t: { dataId: object }): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset / 4;
}
