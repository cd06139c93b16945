/**
 * The memory check before training (and in `mft config check`): the estimate of memory-estimate.ts
 * against what the backend can hold, refused with exit 2 when it does not fit:
 *   - wasm: its heap stops at 4 GiB (every tfjs tensor lives there); the base and the heap together
 *     must fit in the machine's memory;
 *   - cpu, tensorflow: tensors and base share the machine's memory;
 *   - webgpu: each tensor is one GPU buffer, at most the adapter's maxBufferSize; WebGPU does not
 *     say how much memory the GPU has, so the stated budget for the whole run is the machine's memory.
 * The machine's memory is the smaller of the RAM and the cgroup limit (process.constrainedMemory).
 */
import { totalmem } from 'node:os';
import { type BackendName, probeBackends } from '../backend/index.js';
import type { TaskConfig } from '../config/index.js';
import { resolveTargets } from '../lora/index.js';
import { readModelSpec } from '../model/index.js';
import { displayPath, fail, formatBytes } from '../util/index.js';
import { baseStorageBytes, estimateTrainingMemory, type MemoryEstimate } from './memory-estimate.js';

/** The wasm heap's ceiling (32-bit wasm memory). */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

/** The estimate of a run and whether it fits its backend. */
export interface MemoryVerdict {
  estimate: MemoryEstimate;
  backend: BackendName;
  /** The limit that binds (or would bind first), e.g. `the wasm heap (4 GiB)`. */
  limit: string;
  /** Null when it fits; else what exceeds the limit. */
  overBy: string | null;
  /** One line for people: the estimate broken down and the limit. */
  summary: string;
}

/** The machine's memory: RAM, or the cgroup limit when that is smaller. */
export function machineMemory(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  const ram = totalmem();
  return constrained > 0 && constrained < ram ? constrained : ram;
}

/**
 * Estimate the run's memory and compare it with the backend's limit.
 * @param config the loaded task file
 * @param backend the backend the run uses (resolved: not `auto`)
 * @param machineBytes the machine's memory (default `machineMemory()`)
 */
export async function trainingMemory(
  config: TaskConfig,
  backend: BackendName,
  machineBytes = machineMemory(),
): Promise<MemoryVerdict> {
  const spec = readModelSpec(config.base_model);
  const bytesPerElement =
    config.precision === 'fp32' ? 4 : config.precision === 'auto' && spec.torch_dtype === 'float32' ? 4 : 2;
  const estimate = estimateTrainingMemory(
    spec,
    baseStorageBytes(spec, bytesPerElement, config.quantization, config.double_quant),
    {
      micro_batch_size: config.micro_batch_size,
      sequence_len: config.sequence_len,
      lora_r: config.lora_r,
      targets: resolveTargets(config.lora_target_modules),
      gradient_checkpointing: config.gradient_checkpointing,
    },
  );
  // each worker thread holds its own tensors (num_workers: auto starts only as many as fit)
  const workers = typeof config.num_workers === 'number' ? config.num_workers : 1;
  const machine = `this machine's memory (${formatBytes(machineBytes)})`;
  let limit = machine;
  let overBy: string | null =
    estimate.base + workers * estimate.tensors > machineBytes
      ? `more than ${machine}${workers > 1 ? ` for ${workers} workers` : ''}`
      : null;
  if (backend === 'wasm') {
    limit = `the wasm heap (${formatBytes(WASM_HEAP_BYTES)}) and ${machine}`;
    if (estimate.tensors > WASM_HEAP_BYTES) {
      overBy = `tensors more than the wasm heap's ${formatBytes(WASM_HEAP_BYTES)}`;
    }
  } else if (backend === 'webgpu') {
    const probe = (await probeBackends()).find((p) => p.name === 'webgpu');
    const maxBuffer = probe?.adapter?.limits.maxBufferSize;
    if (maxBuffer !== undefined && Number.isFinite(maxBuffer)) {
      limit = `the adapter's maxBufferSize (${formatBytes(maxBuffer)}) per tensor and ${machine}`;
      if (estimate.largestTensor > maxBuffer) {
        overBy = `a ${formatBytes(estimate.largestTensor)} tensor, more than the adapter's maxBufferSize of ${formatBytes(maxBuffer)}`;
      }
    }
  }
  return { estimate, backend, limit, overBy, summary: summaryOf(estimate) };
}

/** `about 2.1 GiB (base 1 MiB outside tfjs; tensors 2.1 GiB: LoRA ..., AdamW ..., ...)`. */
function summaryOf(e: MemoryEstimate): string {
  const b = formatBytes;
  return (
    `about ${b(e.total)} (base ${b(e.base)} outside tfjs; tensors ${b(e.tensors)}: LoRA ${b(e.lora)}, ` +
    `AdamW ${b(e.optimizer)}, gradients ${b(e.gradients)}, layer weights ${b(e.layerWeights)}, ` +
    `activations ${b(e.activations)}, lm_head and logits ${b(e.logits)})`
  );
}

/**
 * Refuse a run whose estimate does not fit (exit 2), with the estimate, the limit and the fix.
 * @throws MftError naming the task file
 */
export function checkTrainingMemory(config: TaskConfig, verdict: MemoryVerdict): void {
  if (verdict.overBy === null) return;
  fail(
    displayPath(config.configFile),
    `training on ${verdict.backend} needs ${verdict.summary}: ${verdict.overBy}`,
    memoryFix(config, verdict.estimate),
  );
}

/** The settings to change, the one behind the largest part first. */
function memoryFix(config: TaskConfig, e: MemoryEstimate): string {
  const fixes: [number, string][] = [
    [e.lora + e.optimizer + e.gradients + e.loraActivations, `a smaller lora_r (now ${config.lora_r})`],
    [
      e.activations - e.loraActivations + e.logits,
      `a smaller micro_batch_size (now ${config.micro_batch_size}; raise gradient_accumulation_steps to keep the batch) or sequence_len (now ${config.sequence_len})` +
        (config.gradient_checkpointing ? '' : ', or gradient_checkpointing: true'),
    ],
    [
      e.base + e.layerWeights,
      config.quantization === 'nf4' ? 'a smaller base model' : 'quantization: nf4, or a smaller base model',
    ],
  ];
  fixes.sort((a, b) => b[0] - a[0]);
  return `use ${fixes.map((f) => f[1]).join('; or ')}`;
}
