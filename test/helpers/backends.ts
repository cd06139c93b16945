/**
 * Run a describe block once per tfjs backend. webgpu runs where Dawn finds an adapter (CI: Mesa's
 * lavapipe, see .ci/install-vulkan); elsewhere its block is skipped and its title says why.
 */
import { describe, test } from 'vitest';
import {
  type BackendName,
  initBackend,
  probeBackends,
  useNativeKernels,
  useStockKernels,
} from '../../src/backend/index.js';

const webgpu = (await probeBackends()).find((p) => p.name === 'webgpu')!;

/** Whether this machine runs the webgpu tests (an adapter, software or not). */
export const WEBGPU_AVAILABLE = webgpu.available;

/** ` (skipped: why)` for the title of a webgpu test on a machine without an adapter, else ''. */
export function webgpuSkipReason(): string {
  return webgpu.available ? '' : ` (skipped: ${webgpu.detail})`;
}

/**
 * `describe(`${title} on ${backend}`)` for each backend; an unavailable webgpu is a visible skip.
 * @example onBackends(['wasm', 'cpu', 'webgpu'], 'llama-golden', (backend) => { beforeAll(() => initBackend(backend)); ... });
 */
export function onBackends(
  backends: readonly BackendName[],
  title: string,
  body: (backend: BackendName) => void,
): void {
  for (const backend of backends) {
    const skip = backend === 'webgpu' && !webgpu.available;
    const name = `${title} on ${backend}${backend === 'webgpu' ? webgpuSkipReason() : ''}`;
    describe.skipIf(skip)(name, () => body(backend));
  }
}

/**
 * `rows` for a `describe.each`, plus `webgpuRow` where webgpu runs; elsewhere a skipped block
 * titled `${title} on webgpu (skipped: why)` shows in the report instead.
 * @example describe.each(withWebGpu([['wasm', 'native']], ['webgpu', 'stock'], 'llama-golden'))(...)
 */
export function withWebGpu<T>(rows: T[], webgpuRow: T, title: string): T[] {
  if (webgpu.available) return [...rows, webgpuRow];
  describe.skip(`${title} on webgpu${webgpuSkipReason()}`, () => {
    test('needs a WebGPU adapter', () => {});
  });
  return rows;
}

/** Which matrix products a golden test runs: mft's native kernels (wasm) or tfjs's own. */
export type Kernels = 'native' | 'stock';

/**
 * The rows of the golden tests: wasm twice (every product on the native kernels, no size threshold,
 * then all stock), cpu, and webgpu where it runs.
 * @example describe.each(goldenRows('llama-golden'))('llama-golden on %s, %s kernels', (backend, kernels) => ...)
 */
export function goldenRows(title: string): [BackendName, Kernels][] {
  return withWebGpu<[BackendName, Kernels]>(
    [
      ['wasm', 'native'],
      ['wasm', 'stock'],
      ['cpu', 'stock'],
    ],
    ['webgpu', 'stock'],
    title,
  );
}

/** Make `backend` current with a row's kernels. */
export async function useBackend(backend: BackendName, kernels: Kernels): Promise<void> {
  await initBackend(backend);
  if (backend === 'wasm' && kernels === 'native') useNativeKernels({ minMacs: 0 });
  else useStockKernels();
}
