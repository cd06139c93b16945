/**
 * Memory a training run needs, estimated from the model's config.json and the task settings before
 * anything is loaded, and compared with what the backend can hold, so that settings far past the
 * machine (`lora_r: 100000`, `micro_batch_size: 1000000`) are refused with exit 2 instead of dying
 * inside the wasm heap.
 *
 * Where the bytes live (design.md "the memory model"):
 *   - the frozen base, in its storage format, outside tfjs (process memory, not the wasm heap);
 *   - tfjs tensors: LoRA weights, AdamW's m and v, the step's accumulated gradients and one
 *     micro-batch's gradients (5 fp32 copies of the LoRA parameters); the fp32 weights of the layer
 *     that computes (the trainer streams them, one layer at a time; every layer at once on one tape);
 *     the activations; the lm_head in fp32 and a chunk of logits while the loss runs.
 *
 * The activation terms are fitted to tf.profile peaks of `lossAndGrads` on wasm, with and without
 * the native kernels (tinystories-260k and random Llama shapes of hidden 32-512, mlp 64-1376,
 * batch x seq 4 x 32 .. 8 x 256 and 4 x 512): a checkpointed layer's backward holds about 11.2
 * floats per attention score (batch x heads x seq^2) and 95 x hidden + 24 x intermediate + 3.5 x
 * lora_r per LoRA target floats per token; one tape holds about 0.9 x layers of that. test/train/memory-estimate.test.ts checks the estimate against a
 * measured peak.
 */
import {
  defaultChunkRows,
  LINEAR_NAMES,
  type LinearName,
  linearShapes,
  type ModelSpec,
} from '../model/index.js';
import { quantizedByteLength } from '../quant/index.js';

/** Settings of a run that decide its memory. */
export interface MemorySettings {
  micro_batch_size: number;
  sequence_len: number;
  lora_r: number;
  /** Resolved target module names. */
  targets: readonly LinearName[];
  gradient_checkpointing: boolean;
}

/** Bytes, by part. */
export interface MemoryEstimate {
  /** Frozen base in its storage format (process memory, outside tfjs). */
  base: number;
  /** LoRA weights (fp32). */
  lora: number;
  /** AdamW m and v. */
  optimizer: number;
  /** The step's accumulated gradients and one micro-batch's. */
  gradients: number;
  /** fp32 weights of the layers computing at once (one layer streamed; all layers on one tape). */
  layerWeights: number;
  /** Activations at the peak of the backward pass. */
  activations: number;
  /** The part of `activations` that grows with lora_r (the `[tokens, r]` products). */
  loraActivations: number;
  /** The lm_head in fp32 and a chunk of logits while the loss runs. */
  logits: number;
  /** Everything held as tfjs tensors at the peak (all but `base`). */
  tensors: number;
  /** The largest single tensor (a WebGPU buffer must hold it). */
  largestTensor: number;
  /** base + tensors. */
  total: number;
}

/**
 * Estimate the memory of training with these settings.
 * @param spec the model's config.json
 * @param storageBytes bytes of the frozen base as stored outside tfjs (`baseStorageBytes`)
 * @param s micro_batch_size, sequence_len, lora_r, targets, gradient_checkpointing
 * @example const e = estimateTrainingMemory(spec, baseStorageBytes(spec, 2, 'nf4', true), settings);
 *          console.log(e.tensors, e.total);
 */
export function estimateTrainingMemory(
  spec: ModelSpec,
  storageBytes: number,
  s: MemorySettings,
): MemoryEstimate {
  const F = 4; // fp32
  const L = spec.num_hidden_layers;
  const H = spec.hidden_size;
  const I = spec.intermediate_size;
  const V = spec.vocab_size;
  const B = s.micro_batch_size;
  const T = s.sequence_len;
  const tokens = B * T;
  const shapes = linearShapes(spec);

  const loraParams = L * s.targets.reduce((n, t) => n + s.lora_r * (shapes[t][0] + shapes[t][1]), 0);
  const lora = F * loraParams;
  const layerParams =
    LINEAR_NAMES.reduce((n, t) => n + shapes[t][0] * shapes[t][1], 0) +
    2 * H +
    (spec.attention_bias ? shapes.q_proj[0] + 2 * shapes.k_proj[0] : 0) +
    (spec.o_proj_bias ? H : 0);

  const scores = B * spec.num_attention_heads * T * T;
  const loraPerLayer = tokens * 3.5 * s.lora_r * s.targets.length;
  const perLayer = 11.2 * scores + tokens * (95 * H + 24 * I) + loraPerLayer;
  const kept = L * tokens * H; // each layer's input, kept for the checkpointed backward
  const layers = s.gradient_checkpointing ? 1 : 0.9 * L; // layers whose activations are alive at once
  const activations = F * ((s.gradient_checkpointing ? kept : 0) + layers * perLayer);
  const layerWeights = F * layerParams * (s.gradient_checkpointing ? 2 : L);
  const chunk = Math.min(tokens, defaultChunkRows(V));
  const logits = F * (3 * V * H + 5.3 * V * chunk);

  const fixed = lora + 2 * lora + 2 * lora; // weights, AdamW m and v, gradients (accumulated + micro-batch)
  // the loss runs after the layers' forward and before their backward: it does not add to their peak
  const tensors = fixed + Math.max(layerWeights + activations, F * kept + logits);
  const largestTensor = F * Math.max(scores, tokens * I, V * H, chunk * V, s.lora_r * Math.max(H, I));
  return {
    base: storageBytes,
    lora,
    optimizer: 2 * lora,
    gradients: 2 * lora,
    layerWeights,
    activations,
    loraActivations: F * layers * loraPerLayer,
    logits,
    tensors,
    largestTensor,
    total: storageBytes + tensors,
  };
}

/**
 * Bytes of the frozen base as `loadModel` stores it: the decoder's linear weights NF4 / int8 when
 * quantized, everything else in its storage dtype (`bytesPerElement`: 4 fp32, 2 bf16 / fp16).
 */
export function baseStorageBytes(
  spec: ModelSpec,
  bytesPerElement: number,
  quantization: 'none' | 'int8' | 'nf4',
  doubleQuant: boolean,
): number {
  const shapes = linearShapes(spec);
  const H = spec.hidden_size;
  const linear = LINEAR_NAMES.reduce(
    (n, t) =>
      n +
      (quantization === 'none'
        ? bytesPerElement * shapes[t][0] * shapes[t][1]
        : quantizedByteLength(shapes[t], quantization, doubleQuant)),
    0,
  );
  const biases =
    (spec.attention_bias ? shapes.q_proj[0] + 2 * shapes.k_proj[0] : 0) + (spec.o_proj_bias ? H : 0);
  const perLayer = linear + bytesPerElement * (2 * H + biases);
  const embeddings = spec.vocab_size * H * (spec.tie_word_embeddings ? 1 : 2);
  return spec.num_hidden_layers * perLayer + bytesPerElement * (embeddings + H);
}
