/**
 * Weights I/O and storage: safetensors files (read and write), Hugging Face checkpoint folders,
 * half-precision conversions, and the frozen tensors that hold a base model's weights outside tfjs
 * (`StoredTensor` for float storage; `quant/` adds the quantized kinds).
 */
export { type CheckpointFiles, INDEX_FILE, openCheckpoint, SINGLE_FILE } from './checkpoint-files.js';
export {
  DEQUANTIZE_ABSMAX_KERNEL,
  DEQUANTIZE_KERNEL,
  type DequantizeAbsmaxAttrs,
  type DequantizeAttrs,
  toWords,
  type WordFormat,
  wordBytes,
} from './device-kernels.js';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './dtype.js';
export type { FrozenTensor, StorageDtype } from './frozen-tensor.js';
export {
  DTYPE_ITEMSIZE,
  MAX_HEADER_BYTES,
  type SafetensorsDtype,
  SafetensorsFile,
  type TensorData,
  type TensorInfo,
} from './safetensors.js';
export {
  SafetensorsWriter,
  type TensorToWrite,
  tensorBytes,
  writeSafetensors,
} from './safetensors-writer.js';
export { type FloatStorage, StoredTensor } from './stored-tensor.js';
