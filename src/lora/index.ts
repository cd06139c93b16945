/**
 * LoRA: trainable adapters on the frozen base, their gradients (layer by layer), PEFT files and
 * merging into the base weights.
 */
export { resolveAdapterDir } from './adapter-dir.js';
export { fullTapeLossAndGrads } from './full-tape.js';
export { KAIMING_A, kaimingUniform, kaimingUniformBound } from './kaiming.js';
export {
  type LossAndGrads,
  type LossAndGradsOptions,
  layerwiseLossAndGrads,
  lossAndGrads,
} from './layerwise-grads.js';
export {
  type CreateLoraOptions,
  createLora,
  type LoraConfig,
  type LoraState,
  loraFromAdapter,
  loraScale,
  loraToAdapter,
} from './lora-state.js';
export {
  COPIED_FILES,
  type MergeBase,
  type MergeDtype,
  type MergeOptions,
  type MergeResult,
  mergeAdapter,
  parseSize,
} from './merge.js';
export { checkTrainedBase, type OpenedAdapter, openAdapter, trainedBaseOptions } from './open-adapter.js';
export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  type AdapterConfig,
  loadAdapter,
  type MftTrainingInfo,
  type PeftAdapter,
  saveAdapter,
  TRAINING_INFO_FILE,
} from './peft-adapter.js';
export { type LoraTargets, loraKey, moduleParent, parseLoraKey, resolveTargets } from './targets.js';
