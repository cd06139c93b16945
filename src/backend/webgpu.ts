/**
 * The webgpu backend in Node: `@tensorflow/tfjs-backend-webgpu` on Dawn (the `webgpu` npm package,
 * whose `dawn.node` ships in its tarball). Dawn finds a Vulkan driver: a real GPU, or Mesa's
 * lavapipe (a CPU emulation, "llvmpipe"), which `auto` never picks but `backend: webgpu` accepts.
 */
import { formatProblem, type Problem } from '../util/index.js';

/** What the adapter Dawn found says about itself (`mft doctor` prints it). */
export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU emulation (lavapipe/llvmpipe, SwiftShader, a fallback adapter): correct but slow. */
  software: boolean;
  /** The limits that bound a model: buffer sizes, workgroup storage, storage buffers per stage. */
  limits: Record<string, number>;
  features: string[];
}

export type WebGpuProbe = { ok: true; adapter: WebGpuAdapter } | { ok: false; reason: string };

const REPORTED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupsPerDimension',
] as const;

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|softpipe/i;

interface DawnAdapter {
  info: { vendor: string; architecture: string; device: string; description: string };
  isFallbackAdapter?: boolean;
  limits: Record<string, number>;
  features: Iterable<string>;
}
interface DawnGpu {
  requestAdapter(opts?: { powerPreference?: string }): Promise<DawnAdapter | null>;
}

let installed: Promise<DawnGpu> | undefined;

/**
 * Install Dawn as `navigator.gpu` (and its GPU* globals, which tfjs-backend-webgpu reads) before the
 * backend package is imported: it registers itself at import only when `navigator.gpu` exists.
 */
function installDawn(): Promise<DawnGpu> {
  installed ??= (async () => {
    const { create, globals } = (await import('webgpu')) as unknown as {
      create(flags: string[]): DawnGpu;
      globals: Record<string, unknown>;
    };
    Object.assign(globalThis, globals);
    const gpu = create([]);
    const g = globalThis as { navigator?: { gpu?: unknown } };
    // Node 21+ has a navigator object without gpu; Node 20 has none.
    if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
    return gpu;
  })();
  return installed;
}

/** Whether an adapter is a CPU emulation, from what it says about itself. */
export function isSoftwareAdapter(info: DawnAdapter['info'], isFallback = false): boolean {
  return (
    isFallback ||
    info.architecture === 'software' ||
    SOFTWARE_NAMES.test(`${info.device} ${info.description}`)
  );
}

let probe: Promise<WebGpuProbe> | undefined;

/** Find the adapter tfjs-backend-webgpu will use (high-performance preference, as it asks). */
export function probeWebGpu(): Promise<WebGpuProbe> {
  probe ??= (async (): Promise<WebGpuProbe> => {
    let gpu: DawnGpu;
    try {
      gpu = await installDawn();
    } catch (err) {
      const msg = (err as Error)?.message?.split('\n')[0] ?? String(err);
      if ((err as NodeJS.ErrnoException)?.code === 'ERR_MODULE_NOT_FOUND') {
        return { ok: false, reason: 'the webgpu package is not installed (npm install webgpu)' };
      }
      return { ok: false, reason: `Dawn (webgpu package) failed to load: ${msg}` };
    }
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      return {
        ok: false,
        reason: 'Dawn found no GPU adapter (no usable Vulkan driver)',
      };
    }
    const { vendor, architecture, device, description } = adapter.info;
    const limits: Record<string, number> = {};
    for (const k of REPORTED_LIMITS) limits[k] = Number(adapter.limits[k]);
    return {
      ok: true,
      adapter: {
        vendor,
        architecture,
        device,
        description,
        software: isSoftwareAdapter(adapter.info, adapter.isFallbackAdapter === true),
        limits,
        features: [...adapter.features].sort(),
      },
    };
  })();
  return probe;
}

/** Import the tfjs webgpu backend (it registers 'webgpu' at import) once Dawn is navigator.gpu. */
export async function registerWebGpuBackend(): Promise<void> {
  await installDawn();
  await import('@tensorflow/tfjs-backend-webgpu');
}

/** One line for `mft doctor`: `llvmpipe: Mesa 25.0.7 (software emulation), max buffer 4096 MiB`. */
export function describeAdapter(a: WebGpuAdapter): string {
  const mib = (n: number | undefined) => `${Math.floor((n ?? 0) / 2 ** 20)} MiB`;
  const name = a.description || `${a.vendor} ${a.device}`;
  return `${name}${a.software ? ' (CPU emulation: used only when asked for by name)' : ''}, max buffer ${mib(a.limits.maxBufferSize)}, max storage binding ${mib(a.limits.maxStorageBufferBindingSize)}`;
}

interface GpuErrorLike {
  constructor: { name: string };
  message: string;
}
/** The parts of a GPUDevice the watcher uses (tfjs-backend-webgpu's backend holds it as `device`). */
export interface WatchedDevice {
  lost: Promise<{ reason: string; message: string }>;
  addEventListener(type: 'uncapturederror', listener: (e: { error: GpuErrorLike }) => void): void;
}

const GPU_FIX =
  'a smaller micro_batch_size or sequence_len (the largest tensors are micro_batch_size x heads x sequence_len^2 attention scores and the logits), or another backend (--set backend=wasm)';

/**
 * The problem a failed GPU causes, or null for a device destroyed on purpose. tfjs does not wrap
 * its GPU work in error scopes, so an out-of-memory or rejected buffer surfaces only as an
 * uncaptured error event, and after a lost device reads never resolve.
 */
export function gpuFailure(
  adapter: string,
  event: { lost: { reason: string; message: string } } | { error: GpuErrorLike },
): Problem | null {
  const where = `backend webgpu (${adapter})`;
  if ('lost' in event) {
    if (event.lost.reason === 'destroyed') return null;
    return {
      where,
      message: `the GPU device was lost: ${event.lost.message || event.lost.reason}`,
      fix: GPU_FIX,
    };
  }
  const first = event.error.message.split('\n')[0]!;
  const kind = event.error.constructor.name;
  const what =
    kind === 'GPUOutOfMemoryError'
      ? `out of GPU memory: ${first}`
      : `the GPU refused an allocation or a kernel (${kind}): ${first}`;
  return { where, message: what, fix: GPU_FIX };
}

/**
 * Watch the device tfjs runs on: a lost device or a GPU error ends the process with exit code 2
 * and one line (what was asked, what happened, the fix) instead of wrong numbers or a hang.
 */
const watched = new WeakSet<WatchedDevice>();

export function watchWebGpuDevice(device: WatchedDevice, adapter: string): void {
  if (watched.has(device)) return;
  watched.add(device);
  const stop = (p: Problem | null) => {
    if (!p) return;
    process.stderr.write(`mft: ${formatProblem(p)}\n`);
    process.exit(2);
  };
  device.addEventListener('uncapturederror', (e) => stop(gpuFailure(adapter, { error: e.error })));
  void device.lost.then((lost) => stop(gpuFailure(adapter, { lost })));
}
