/**
 * Choose and initialise the tfjs backend. This is the only module that names a backend package:
 * every other stage imports `@tensorflow/tfjs` and runs the same code on any backend.
 */
import * as tf from '@tensorflow/tfjs';
import { MftError } from '../util/index.js';
import { registerDequantKernels } from './dequant-kernels.js';
import { useNativeKernels } from './native-matmul.js';
import {
  describeAdapter,
  probeWebGpu,
  registerWebGpuBackend,
  type WatchedDevice,
  type WebGpuAdapter,
  watchWebGpuDevice,
} from './webgpu.js';

export {
  type NativeKernelStatus,
  nativeKernelStatus,
  shareNativeThreads,
  useNativeKernels,
  useStockKernels,
} from './native-matmul.js';
export type { WebGpuAdapter } from './webgpu.js';
export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';

export interface BackendProbe {
  name: BackendName;
  available: boolean;
  /** What was found (`@tensorflow/tfjs-node-gpu 4.22.0, CUDA`) or why it is not available. */
  detail: string;
  /** webgpu: the adapter Dawn found, with its limits and features. */
  adapter?: WebGpuAdapter;
  /** Usable when asked for by name, but `auto` passes it over (a CPU-emulated GPU). */
  autoSkips?: boolean;
}

/** Order for `backend: auto` (webgpu only on a real GPU, see probeWebGpuBackend). */
export const AUTO_ORDER: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

// tfjs prints a banner ("looks like you are running TensorFlow.js in Node.js") on first use of the
// cpu backend unless PROD is set; PROD also skips debug-only checks.
tf.env().set('PROD', true);

const NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

function importErrorReason(pkg: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && msg.includes(pkg)) {
    return `${pkg} is not installed (npm install ${pkg}; it downloads libtensorflow, see docs/backends.md)`;
  }
  const lib = /lib[\w.+-]+\.so[.\d]*/.exec(msg);
  if (lib) return `${pkg} is installed but a native library is missing: ${lib[0]}`;
  return `${pkg} failed to load: ${msg.split('\n')[0]}`;
}

let tensorflowProbe: Promise<BackendProbe> | undefined;

async function probeTensorflow(): Promise<BackendProbe> {
  const reasons: string[] = [];
  for (const pkg of NODE_PACKAGES) {
    try {
      // Importing registers the 'tensorflow' backend with tfjs.
      await import(pkg);
      const kind = pkg.endsWith('-gpu') ? 'GPU (CUDA)' : 'CPU';
      return { name: 'tensorflow', available: true, detail: `${pkg}, ${kind}` };
    } catch (err) {
      reasons.push(importErrorReason(pkg, err));
    }
  }
  return { name: 'tensorflow', available: false, detail: reasons.join('; ') };
}

/** Whether this JS engine validates a WebAssembly SIMD module (v128 const). */
function wasmSimdSupported(): boolean {
  const simdModule = new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98,
    11,
  ]);
  const wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
  return wasm.validate(simdModule);
}

async function probeWasm(): Promise<BackendProbe> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    const simd = wasmSimdSupported() ? 'SIMD on' : 'SIMD off';
    // The threaded wasm build needs SharedArrayBuffer workers, which tfjs switches off in Node.
    return {
      name: 'wasm',
      available: true,
      detail: `@tensorflow/tfjs-backend-wasm, ${simd}, threads off (1 thread in Node)`,
    };
  } catch (err) {
    return {
      name: 'wasm',
      available: false,
      detail: importErrorReason('@tensorflow/tfjs-backend-wasm', err),
    };
  }
}

async function probeWebGpuBackend(): Promise<BackendProbe> {
  const found = await probeWebGpu();
  if (!found.ok) return { name: 'webgpu', available: false, detail: found.reason };
  return {
    name: 'webgpu',
    available: true,
    detail: `@tensorflow/tfjs-backend-webgpu on Dawn: ${describeAdapter(found.adapter)}`,
    adapter: found.adapter,
    ...(found.adapter.software ? { autoSkips: true } : {}),
  };
}

/** Probe every backend (without switching to it). */
export async function probeBackends(): Promise<BackendProbe[]> {
  tensorflowProbe ??= probeTensorflow();
  return [
    await tensorflowProbe,
    await probeWebGpuBackend(),
    await probeWasm(),
    {
      name: 'cpu',
      available: true,
      detail: 'plain JavaScript (@tensorflow/tfjs-backend-cpu), always available',
    },
  ];
}

/** The backend `auto` resolves to on this machine. */
export async function autoBackend(): Promise<BackendName> {
  const probes = await probeBackends();
  const found = AUTO_ORDER.find((n) => {
    const p = probes.find((q) => q.name === n);
    return p?.available && !p.autoSkips;
  });
  return found ?? 'cpu';
}

/** Switch tfjs to `name` (its package already imported) and register mft's kernels for it. */
async function activate(name: BackendName): Promise<void> {
  if (tf.getBackend() !== name || !tf.engine().backendNames().includes(name)) {
    const ok = await tf.setBackend(name);
    if (!ok) throw new MftError({ where: 'backend', message: `${name} failed to initialise` });
  }
  await tf.ready();
  if (name === 'wasm') useNativeKernels();
}

/**
 * Start `name` in a worker thread whose main thread chose it with `initBackend` (so without probing
 * the other backends again): its own instance, with the same kernels.
 */
export async function initWorkerBackend(name: 'wasm' | 'cpu'): Promise<void> {
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  await activate(name);
}

/**
 * Make `choice` the active tfjs backend and return its name.
 * An explicit backend that is unavailable is a user error that says why.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendName> {
  const name = choice === 'auto' ? await autoBackend() : choice;
  registerDequantKernels();
  const probe = (await probeBackends()).find((p) => p.name === name);
  if (!probe?.available) {
    throw new MftError({
      where: 'backend',
      message: `${name} is not available: ${probe?.detail ?? 'unknown backend'}`,
      fix:
        name === 'webgpu'
          ? 'install a Vulkan driver for the GPU (docs/webgpu.md), or use another backend (--set backend=wasm, or auto)'
          : 'run `mft doctor` to see which backends this machine has, or use backend: auto',
    });
  }
  if (name === 'webgpu') await registerWebGpuBackend();
  await activate(name);
  if (name === 'webgpu' && probe.adapter) {
    const { device } = tf.backend() as unknown as { device: WatchedDevice };
    watchWebGpuDevice(device, probe.adapter.description || probe.adapter.device);
  }
  return name;
}
