/**
 * The trainable LoRA weights of a model: one `lora_A [r, in]` and one `lora_B [out, r]` tf.Variable
 * per targeted linear layer of every decoder layer (PEFT's shapes, so saving is a key rename).
 *
 *   y = x W^T + s * dropout(x) A^T B^T,   s = lora_alpha / r   (rsLoRA: lora_alpha / sqrt(r))
 *
 * (Hu et al. 2021, https://arxiv.org/abs/2106.09685; rsLoRA: Kalajdzievski 2023,
 * https://arxiv.org/abs/2312.03732.) A starts Kaiming-uniform and B at zero, so at step 0 the
 * adapted model computes exactly the base model. These variables are the only long-lived
 * trainable tensors; the base weights stay frozen outside tfjs.
 */
import * as tf from '@tensorflow/tfjs';
import {
  type DropoutRows,
  type LayerLora,
  LINEAR_NAMES,
  type LinearName,
  type LoadedModel,
  type LoraParams,
  layerWeightNames,
  type ModelLora,
} from '../model/index.js';
import { MftError, mixSeed, type Problem } from '../util/index.js';
import { kaimingUniform } from './kaiming.js';
import { loraShapeProblems } from './open-adapter.js';
import type { AdapterConfig, MftTrainingInfo, PeftAdapter } from './peft-adapter.js';
import { type LoraTargets, loraKey, parseLoraKey, resolveTargets } from './targets.js';

/** The hyperparameters a LoRA state was built with. */
export interface LoraConfig {
  /** Rank of every adapter. */
  readonly r: number;
  readonly alpha: number;
  /** Dropout rate on the adapter input, used in training only. */
  readonly dropout: number;
  /** Targeted modules, canonical order. */
  readonly targets: readonly LinearName[];
  readonly useRslora: boolean;
  /** The factor s in front of B A: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  readonly scale: number;
  /** Base model directory the adapter belongs to (PEFT's base_model_name_or_path), if known. */
  readonly baseModel: string | null;
}

/** Trainable LoRA weights keyed by PEFT tensor name, and their view as the model's `ModelLora`. */
export interface LoraState {
  /** PEFT key -> fp32 variable (`lora_A [r, in]`, `lora_B [out, r]`), layer by layer, A before B. */
  readonly variables: Map<string, tf.Variable>;
  readonly config: LoraConfig;
  /** Number of decoder layers (the length of `toModelLora()`). */
  readonly numLayers: number;
  /**
   * The adapters as the model consumes them. With `dropout` (training) each adapter gets a mask seed
   * `mixSeed(stepSeed, layer, moduleIndex)`, so a recomputation with the same stepSeed draws the same
   * masks; without it (eval, generation) there is no dropout. `rows` places the input's rows within
   * the micro-batch the masks are drawn for (a worker's share of it).
   */
  toModelLora(dropout?: { stepSeed: number; rows?: DropoutRows }): ModelLora;
  /** Dispose every variable. */
  dispose(): void;
}

/** Options of `createLora`, the task keys `lora_r`, `lora_alpha`, `lora_dropout`, ... */
export interface CreateLoraOptions {
  r: number;
  alpha: number;
  dropout: number;
  targets: LinearName[] | LoraTargets;
  useRslora: boolean;
  /** Seed of the `lora_A` initialisation (each matrix draws from mixSeed(seed, tag, layer, module)). */
  seed: number;
}

/** Domain tag mixed into init seeds so they never coincide with dropout seeds ("LoRA"). */
const INIT_TAG = 0x4c6f5241;

/** s = alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function loraScale(r: number, alpha: number, opts: { rslora: boolean }): number {
  return opts.rslora ? alpha / Math.sqrt(r) : alpha / r;
}

function checkHyperparameters(r: number, alpha: number, dropout: number, where: string): void {
  const problems = [];
  if (!Number.isInteger(r) || r < 1) {
    problems.push({
      where: `${where}lora_r`,
      message: `must be a positive integer, got ${r}`,
      fix: 'e.g. 8',
    });
  }
  if (!Number.isFinite(alpha) || alpha <= 0) {
    problems.push({ where: `${where}lora_alpha`, message: `must be > 0, got ${alpha}`, fix: 'e.g. 16' });
  }
  if (!(dropout >= 0 && dropout < 1)) {
    problems.push({
      where: `${where}lora_dropout`,
      message: `must be in [0, 1), got ${dropout}`,
      fix: 'e.g. 0.05',
    });
  }
  if (problems.length > 0) throw new MftError(problems);
}

/** [out, in] of a frozen linear weight. */
function linearShape(model: LoadedModel, layer: number, name: LinearName): [number, number] {
  const shape = model.layers[layer]![name].shape;
  return [shape[0]!, shape[1]!];
}

function makeState(model: LoadedModel, config: LoraConfig, variables: Map<string, tf.Variable>): LoraState {
  const numLayers = model.layers.length;
  return {
    variables,
    config,
    numLayers,
    toModelLora(dropout?: { stepSeed: number; rows?: DropoutRows }): ModelLora {
      const out: ModelLora = [];
      for (let layer = 0; layer < numLayers; layer++) {
        const ll: LayerLora = {};
        for (const name of config.targets) {
          const p: LoraParams = {
            A: variables.get(loraKey(layer, name, 'A')) as tf.Variable as tf.Tensor2D,
            B: variables.get(loraKey(layer, name, 'B')) as tf.Variable as tf.Tensor2D,
            scale: config.scale,
          };
          if (dropout && config.dropout > 0) {
            p.dropout = {
              rate: config.dropout,
              seed: mixSeed(dropout.stepSeed, layer, LINEAR_NAMES.indexOf(name)),
              ...(dropout.rows ? { rows: dropout.rows } : {}),
            };
          }
          ll[name] = p;
        }
        out.push(ll);
      }
      return out;
    },
    dispose(): void {
      for (const v of variables.values()) v.dispose();
      variables.clear();
    },
  };
}

function variableOf(data: Float32Array, shape: [number, number]): tf.Variable {
  const t = tf.tensor2d(data, shape, 'float32');
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

/**
 * New LoRA weights for `model`: A Kaiming-uniform (a = sqrt(5), as PEFT), B zero.
 * @param model the frozen base (only its shapes are read)
 * @param opts r, alpha, dropout, targets (module names or 'all-linear'), useRslora, seed
 * @example const lora = createLora(model, { r: 8, alpha: 16, dropout: 0.05, targets: 'all-linear', useRslora: false, seed: 42 });
 *          lossAndGrads(model, lora, batch, { lossScale: 1 });
 */
export function createLora(model: LoadedModel, opts: CreateLoraOptions): LoraState {
  checkHyperparameters(opts.r, opts.alpha, opts.dropout, '');
  const targets = resolveTargets(opts.targets);
  const config: LoraConfig = Object.freeze({
    r: opts.r,
    alpha: opts.alpha,
    dropout: opts.dropout,
    targets: Object.freeze(targets),
    useRslora: opts.useRslora,
    scale: loraScale(opts.r, opts.alpha, { rslora: opts.useRslora }),
    baseModel: model.dir ?? null,
  });
  const variables = new Map<string, tf.Variable>();
  for (let layer = 0; layer < model.layers.length; layer++) {
    for (const name of targets) {
      const [out, inp] = linearShape(model, layer, name);
      const seed = mixSeed(opts.seed, INIT_TAG, layer, LINEAR_NAMES.indexOf(name));
      variables.set(loraKey(layer, name, 'A'), variableOf(kaimingUniform(opts.r, inp, seed), [opts.r, inp]));
      variables.set(loraKey(layer, name, 'B'), variableOf(new Float32Array(out * opts.r), [out, opts.r]));
    }
  }
  return makeState(model, config, variables);
}

/** `target_modules` of an adapter config as a list (PEFT also allows one string). */
function adapterTargets(config: AdapterConfig): LoraTargets {
  const t = config.target_modules as unknown;
  if (t === 'all-linear') return 'all-linear';
  if (typeof t === 'string') return [t];
  return (t ?? []) as string[];
}

/**
 * LoRA weights from a PEFT adapter (e.g. from `loadAdapter(dir)`), checked against the base model:
 * every targeted module of every layer must have `lora_A [r, in]` and `lora_B [out, r]`, and no
 * other tensor may be present. Any mismatch is an MftError naming the tensor.
 * @param model the base the adapter is applied to
 * @param adapter config + tensors in PEFT's layout
 * @example const lora = loraFromAdapter(model, loadAdapter('checkpoints/runs/x/adapter'));
 */
export function loraFromAdapter(model: LoadedModel, adapter: PeftAdapter): LoraState {
  const where = 'adapter_config.json: ';
  const r = Number(adapter.config.r);
  const alpha = Number(adapter.config.lora_alpha);
  const dropout = Number(adapter.config.lora_dropout ?? 0);
  checkHyperparameters(r, alpha, dropout, where);
  const targets = resolveTargets(adapterTargets(adapter.config), `${where}target_modules`);
  const useRslora = adapter.config.use_rslora === true;

  const problems: Problem[] = [];
  const fixMismatch =
    'use the base model this adapter was trained on (adapter_config.json base_model_name_or_path)';
  for (const key of adapter.tensors.keys()) {
    const parsed = parseLoraKey(key);
    if (!parsed) {
      problems.push({
        where: `adapter_model.safetensors: ${key}`,
        message: 'not a LoRA weight of a decoder layer',
        fix: 'only lora_A / lora_B weights of q/k/v/o/gate/up/down_proj are supported',
      });
    } else if (parsed.layer >= model.layers.length || !targets.includes(parsed.name)) {
      problems.push({
        where: `adapter_model.safetensors: ${key}`,
        message:
          parsed.layer >= model.layers.length
            ? `layer ${parsed.layer} does not exist: the base model has ${model.layers.length} layers`
            : `${parsed.name} is not in target_modules (${targets.join(', ')})`,
        fix: fixMismatch,
      });
    }
  }
  for (let layer = 0; layer < model.layers.length; layer++) {
    for (const name of targets) {
      const base = { name: layerWeightNames(layer)[name], shape: linearShape(model, layer, name) };
      problems.push(
        ...loraShapeProblems(adapter, 'adapter_model.safetensors', loraKey(layer, name, 'A'), base),
      );
    }
  }
  const variables = new Map<string, tf.Variable>();
  if (problems.length === 0) {
    for (let layer = 0; layer < model.layers.length; layer++) {
      for (const name of targets) {
        for (const which of ['A', 'B'] as const) {
          const key = loraKey(layer, name, which);
          const t = adapter.tensors.get(key)!; // present and [r, in] / [out, r]: checked above
          variables.set(key, variableOf(t.data, [t.shape[0]!, t.shape[1]!]));
        }
      }
    }
  }
  if (problems.length > 0) {
    for (const v of variables.values()) v.dispose();
    throw new MftError(problems);
  }
  const config: LoraConfig = Object.freeze({
    r,
    alpha,
    dropout,
    targets: Object.freeze(targets),
    useRslora,
    scale: loraScale(r, alpha, { rslora: useRslora }),
    baseModel: adapter.config.base_model_name_or_path ?? model.dir ?? null,
  });
  return makeState(model, config, variables);
}

/**
 * The current LoRA weights as a PEFT adapter (fp32 copies; the variables may keep training).
 * @param state the LoRA weights
 * @param opts training: the `mft_training.json` record to save beside the adapter
 * @example saveAdapter(join(runDir, 'adapter'), loraToAdapter(lora, { training }));
 */
export async function loraToAdapter(
  state: LoraState,
  opts: { training?: MftTrainingInfo } = {},
): Promise<PeftAdapter> {
  const c = state.config;
  const config: AdapterConfig = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: c.r,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    target_modules: [...c.targets],
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: c.useRslora,
    base_model_name_or_path: c.baseModel,
    inference_mode: true,
  };
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, v] of state.variables) {
    tensors.set(key, { shape: [...v.shape], data: new Float32Array((await v.data()) as Float32Array) });
  }
  const adapter: PeftAdapter = { config, tensors };
  if (opts.training) adapter.training = opts.training;
  return adapter;
}
