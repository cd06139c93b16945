/**
 * The model stage: Hugging Face checkpoints (config.json, safetensors, tokenizer) → frozen weights
 * outside tfjs → the Llama / Mistral / Qwen2 decoder in fp32, layer by layer, with LoRA terms;
 * the loss, and generation with a KV cache.
 */
export { type AttentionContext, attention, batchMask, createAttentionContext, MASKED } from './attention.js';
export { type CheckpointFiles, INDEX_FILE, openCheckpoint, SINGLE_FILE } from './checkpoint-files.js';
export { crossEntropySum, defaultChunkRows, lmHeadCrossEntropySum } from './cross-entropy.js';
export { decoderLayer, type LayerTensors } from './decoder-layer.js';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './dtype.js';
export {
  embedTokens,
  type ForwardOptions,
  type ForwardResult,
  forward,
  frozenRows,
  type HeadOptions,
  headLogits,
  headLossSum,
} from './forward.js';
export type { FrozenTensor, StorageDtype } from './frozen-tensor.js';
export { type GenerateOptions, generate } from './generate.js';
export { KvCache } from './kv-cache.js';
export {
  dropout,
  type LayerLora,
  LINEAR_NAMES,
  type LinearName,
  type LoraParams,
  linear,
  type ModelLora,
} from './linear.js';
export {
  buildModel,
  type LoadModelOptions,
  layerWeightNames,
  loadModel,
  type Precision,
  type Quantization,
  type TensorSource,
} from './load.js';
export {
  disposeLayerTensors,
  type LayerWeights,
  type LoadedModel,
  layerTensors,
} from './loaded-model.js';
export { rmsNorm } from './rms-norm.js';
export { applyRope, ropeInvFreq, ropeTables, rotateHalf } from './rope.js';
export {
  DTYPE_ITEMSIZE,
  MAX_HEADER_BYTES,
  type SafetensorsDtype,
  SafetensorsFile,
  SafetensorsWriter,
  type TensorData,
  type TensorInfo,
  type TensorToWrite,
  tensorBytes,
  writeSafetensors,
} from './safetensors.js';
export { argmax, type SamplingOptions, sampleToken } from './sampling.js';
export {
  type Architecture,
  type ModelSpec,
  parseModelSpec,
  type RopeScaling,
  readModelSpec,
  SUPPORTED_ARCHITECTURES,
  specHash,
} from './spec.js';
export { type FloatStorage, StoredTensor } from './stored-tensor.js';
export { loadTokenizer, type MftTokenizer, TOKENIZER_FILES } from './tokenizer.js';
