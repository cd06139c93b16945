import { openBlas } from '../../src/backend/blas.js';

/** Whether the wasm kernels of mft's native binding run here: OpenBLAS opens and they are not switched off. */
export const HAS_BINDING = (() => {
  if (process.env.MFT_NATIVE_KERNELS === '0') return false;
  try {
    openBlas();
    return true;
  } catch {
    return false;
  }
})();
