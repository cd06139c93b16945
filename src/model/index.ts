/**
 * The model stage (compute): the spec read from config.json, loading a checkpoint into frozen
 * weights (`weights/`, `quant/`), the Llama / Mistral / Qwen2 decoder in fp32, layer by layer, with
 * LoRA terms; the loss, and generation with a KV cache.
 */

export { type AttentionContext, attention, batchMask, createAttentionContext, MASKED } from './attention.js';
export { type Batch, IGNORE_INDEX } from './batch.js';
export { checkVocabulary } from './check-vocabulary.js';
export {
  crossEntropySum,
  LOG_SUM_EXP_GRAD_KERNEL,
  LOG_SUM_EXP_KERNEL,
  rowLogSumExp,
} from './cross-entropy.js';
export { decoderLayer, type LayerTensorName, type LayerTensors } from './decoder-layer.js';
export { DROPOUT_KERNEL, type DropoutRows, dropout, dropoutMask } from './dropout.js';
export {
  embedTokens,
  type ForwardOptions,
  type ForwardResult,
  forward,
  frozenRows,
} from './forward.js';
export { type GenerateOptions, generate, lastLogits } from './generate.js';
export {
  defaultChunkRows,
  type HeadOptions,
  headLossSum,
  type LossStats,
  lmHeadCrossEntropySum,
  OutputHead,
} from './head.js';
export { KvCache } from './kv-cache.js';
export {
  type BatchLayerLora,
  type LayerLora,
  type LoraParams,
  linear,
  type ModelLora,
  type RowLora,
} from './linear.js';
export { LINEAR_NAMES, type LinearName, linearShapes } from './linear-names.js';
export {
  buildModel,
  type LoadModelOptions,
  layerWeightNames,
  loadModel,
  PRECISIONS,
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
export { RMS_NORM_GRAD_KERNEL, RMS_NORM_KERNEL, rmsNorm } from './rms-norm.js';
export { applyRope, ropeInvFreq, ropeTables, rotateHalf } from './rope.js';
export { decodeContext, prefillContext, RowCache } from './row-cache.js';
export { type RunLayersOptions, runLayers } from './run-layers.js';
export { applyRepetitionPenalty, argmax, type SamplingOptions, sampleToken } from './sampling.js';
export {
  type Architecture,
  type ModelSpec,
  parseModelSpec,
  type RopeScaling,
  readModelSpec,
  SUPPORTED_ARCHITECTURES,
  specHash,
} from './spec.js';
export { SWIGLU_GRAD_KERNEL, SWIGLU_KERNEL, swiglu } from './swiglu.js';
export {
  deviceWeights,
  layerBytes,
  residentWeights,
  streamedWeights,
  trainingWeights,
  type WeightProvider,
  weightsFor,
  withLayer,
} from './weight-provider.js';
