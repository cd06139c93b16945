/**
 * LoRA adapters on disk, in Hugging Face PEFT's layout, so PEFT, vLLM and llama.cpp's converter
 * load what mft writes and mft loads what PEFT writes:
 *
 *   adapter_config.json          LoraConfig fields (peft_type "LORA", r, lora_alpha, target_modules, ...)
 *   adapter_model.safetensors    metadata {"format": "pt"}, fp32,
 *                                base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight  [r, in]
 *                                base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight  [out, r]
 *   mft_training.json            (mft only) the base storage the adapter was trained against
 *
 * PEFT options that change the maths and that mft does not implement (per-module ranks, DoRA,
 * extra trainable modules, LoRA biases, regex targets...) are refused, never ignored.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRECISIONS, type Precision } from '../model/load.js';
import { fail, MftError, type Problem, writeFileAtomic } from '../util/index.js';
import { bf16ToF32, f16ToF32, SafetensorsFile, writeSafetensors } from '../weights/index.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const TRAINING_INFO_FILE = 'mft_training.json';

/** `adapter_config.json`: PEFT's LoraConfig fields (other PEFT keys are kept as read). */
export interface AdapterConfig {
  peft_type: 'LORA';
  task_type: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Module names, or PEFT's special value `'all-linear'`. */
  target_modules: string[] | string;
  bias: 'none';
  use_rslora: boolean;
  fan_in_fan_out: boolean;
  base_model_name_or_path: string | null;
  inference_mode: boolean;
  [key: string]: unknown;
}

/** `mft_training.json`: how the base was stored while the adapter trained. */
export interface MftTrainingInfo {
  /** Base model directory as given to training (`base_model`). */
  base_model: string;
  /** `specHash` of the base's config.json, to notice a different base. */
  config_hash: string;
  quantization: 'none' | 'int8' | 'nf4';
  double_quant: boolean;
  /** Storage dtype of the non-quantized weights. */
  precision: Precision;
  [key: string]: unknown;
}

/** A LoRA adapter in memory: its config, fp32 tensors by PEFT key, and optional training record. */
export interface PeftAdapter {
  config: AdapterConfig;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  training?: MftTrainingInfo;
}

/**
 * The keys PEFT (0.13 and later) writes in `adapter_config.json`, at their defaults. Written so the
 * file looks like PEFT's own; only keys that every PEFT since 0.13 accepts are listed.
 */
const PEFT_DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze({
  alpha_pattern: {},
  auto_mapping: null,
  base_model_name_or_path: null,
  bias: 'none',
  fan_in_fan_out: false,
  inference_mode: true,
  init_lora_weights: true,
  layer_replication: null,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_alpha: 8,
  lora_dropout: 0,
  megatron_config: null,
  megatron_core: 'megatron.core',
  modules_to_save: null,
  peft_type: 'LORA',
  r: 8,
  rank_pattern: {},
  revision: null,
  target_modules: null,
  task_type: 'CAUSAL_LM',
  use_dora: false,
  use_rslora: false,
});

const KEY_RE = /\.lora_(A|B)\.weight$/;

const isEmpty = (v: unknown): boolean =>
  v === undefined ||
  v === null ||
  v === false ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && Object.keys(v as object).length === 0);

/** Every problem with a config's fields; empty when mft can apply it exactly. */
function configProblems(where: string, c: Record<string, unknown>): Problem[] {
  const problems: Problem[] = [];
  const bad = (field: string, message: string, fix: string) =>
    problems.push({ where, message: `${field}: ${message}`, fix });
  if (c.peft_type !== 'LORA')
    bad(
      'peft_type',
      `${JSON.stringify(c.peft_type)} is not supported; mft reads LoRA adapters`,
      'use a LoRA adapter',
    );
  if (c.task_type != null && c.task_type !== 'CAUSAL_LM') {
    bad('task_type', `${JSON.stringify(c.task_type)} is not supported`, 'use a CAUSAL_LM adapter');
  }
  if (typeof c.r !== 'number' || !Number.isInteger(c.r) || c.r < 1)
    bad('r', `expected a positive integer, got ${JSON.stringify(c.r)}`, 'fix adapter_config.json');
  if (typeof c.lora_alpha !== 'number' || !Number.isFinite(c.lora_alpha)) {
    bad('lora_alpha', `expected a number, got ${JSON.stringify(c.lora_alpha)}`, 'fix adapter_config.json');
  }
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    bad(
      'lora_dropout',
      `expected a number in [0, 1), got ${JSON.stringify(dropout)}`,
      'fix adapter_config.json',
    );
  }
  const t = c.target_modules;
  if (typeof t === 'string') {
    if (t !== 'all-linear') {
      bad(
        'target_modules',
        `the regular expression ${JSON.stringify(t)} is not supported`,
        'list the module names, e.g. ["q_proj", "v_proj"], or use "all-linear"',
      );
    }
  } else if (!Array.isArray(t) || t.length === 0 || !t.every((m) => typeof m === 'string')) {
    bad(
      'target_modules',
      `expected a list of module names, got ${JSON.stringify(t)}`,
      'list the module names, e.g. ["q_proj", "v_proj"]',
    );
  }
  if ((c.bias ?? 'none') !== 'none')
    bad(
      'bias',
      `${JSON.stringify(c.bias)} is not supported (only "none")`,
      'train the adapter with bias="none"',
    );
  if (c.use_rslora != null && typeof c.use_rslora !== 'boolean')
    bad(
      'use_rslora',
      `expected true or false, got ${JSON.stringify(c.use_rslora)}`,
      'fix adapter_config.json',
    );
  // Fields that change y = x W^T + s * x A^T B^T and that mft does not implement.
  const unsupported: [string, string][] = [
    ['rank_pattern', 'per-module ranks'],
    ['alpha_pattern', 'per-module alphas'],
    ['use_dora', 'DoRA'],
    ['modules_to_save', 'extra fully trained modules'],
    ['lora_bias', 'LoRA biases'],
    ['fan_in_fan_out', 'transposed (Conv1D) weights'],
    ['layers_to_transform', 'adapting only some layers'],
    ['layers_pattern', 'adapting only some layers'],
    ['layer_replication', 'layer replication'],
    ['exclude_modules', 'excluded modules'],
    ['trainable_token_indices', 'trainable token embeddings'],
    ['use_qalora', 'QA-LoRA'],
  ];
  for (const [field, what] of unsupported) {
    if (!isEmpty(c[field])) {
      bad(
        field,
        `${JSON.stringify(c[field])} (${what}) is not supported by mft`,
        `remove ${field} or use an adapter trained without it`,
      );
    }
  }
  return problems;
}

/**
 * Load a PEFT LoRA adapter directory (fp32, bf16 or fp16 tensors; widened to fp32).
 * @param dir folder with adapter_config.json and adapter_model.safetensors (and maybe mft_training.json)
 * @example const adapter = loadAdapter('checkpoints/runs/code/adapter');
 */
export function loadAdapter(dir: string): PeftAdapter {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(configPath))
    fail(
      dir,
      `no ${ADAPTER_CONFIG_FILE} in this directory`,
      'point at an adapter directory (or a run directory with adapter/)',
    );
  const raw = readJsonObject(configPath);
  const problems = configProblems(configPath, raw);
  if (problems.length > 0) throw new MftError(problems);
  const config: AdapterConfig = {
    ...raw,
    peft_type: 'LORA',
    task_type: (raw.task_type as string | null | undefined) ?? null,
    r: raw.r as number,
    lora_alpha: raw.lora_alpha as number,
    lora_dropout: (raw.lora_dropout as number | undefined) ?? 0,
    target_modules: raw.target_modules as string[] | string,
    bias: 'none',
    use_rslora: (raw.use_rslora as boolean | undefined) ?? false,
    fan_in_fan_out: false,
    base_model_name_or_path:
      typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : null,
    inference_mode: raw.inference_mode !== false,
  };
  const adapter: PeftAdapter = { config, tensors: readAdapterTensors(dir, config.r) };
  const trainingPath = join(dir, TRAINING_INFO_FILE);
  if (existsSync(trainingPath)) adapter.training = readTrainingInfo(trainingPath);
  return adapter;
}

function readJsonObject(path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(path, `not valid JSON: ${(e as Error).message}`, 'fix or rewrite the file');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    fail(path, 'expected a JSON object', 'fix or rewrite the file');
  return v as Record<string, unknown>;
}

function readAdapterTensors(dir: string, r: number): PeftAdapter['tensors'] {
  const path = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(path)) {
    const bin = existsSync(join(dir, 'adapter_model.bin'));
    fail(
      dir,
      bin
        ? 'adapter_model.bin (pickle) is not supported, only adapter_model.safetensors'
        : `no ${ADAPTER_WEIGHTS_FILE} in this directory`,
      bin
        ? 'save the adapter with safe_serialization=True (the PEFT default)'
        : 'point at a complete adapter directory',
    );
  }
  const file = SafetensorsFile.open(path);
  const tensors: PeftAdapter['tensors'] = new Map();
  const problems: Problem[] = [];
  try {
    for (const key of file.names()) {
      const where = `${path}: ${key}`;
      const m = KEY_RE.exec(key);
      const { dtype, shape } = file.info(key);
      if (!m) {
        problems.push({
          where,
          message: 'not a lora_A / lora_B weight (mft adapters hold nothing else)',
          fix: 'use a plain LoRA adapter',
        });
        continue;
      }
      if (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16') {
        problems.push({
          where,
          message: `dtype ${dtype} is not a float dtype`,
          fix: 'save the adapter in fp32',
        });
        continue;
      }
      const rankDim = m[1] === 'A' ? shape[0] : shape[1];
      if (shape.length !== 2 || rankDim !== r) {
        const want = m[1] === 'A' ? `[${r}, in]` : `[out, ${r}]`;
        problems.push({
          where,
          message: `shape [${shape.join(', ')}] is not ${want} for r = ${r}`,
          fix: 'check r in adapter_config.json',
        });
        continue;
      }
      const pair = key.replace(KEY_RE, m[1] === 'A' ? '.lora_B.weight' : '.lora_A.weight');
      if (!file.has(pair))
        problems.push({
          where,
          message: `has no matching ${pair}`,
          fix: 'the adapter file is incomplete; save it again',
        });
      const t = file.read(key);
      const data =
        dtype === 'F32'
          ? (t.data as Float32Array)
          : dtype === 'BF16'
            ? bf16ToF32(t.data as Uint16Array)
            : f16ToF32(t.data as Uint16Array);
      tensors.set(key, { shape: [...shape], data });
    }
  } finally {
    file.close();
  }
  if (problems.length > 0) throw new MftError(problems);
  if (tensors.size === 0) fail(path, 'holds no LoRA weights', 'point at a trained adapter');
  return tensors;
}

function readTrainingInfo(path: string): MftTrainingInfo {
  const raw = readJsonObject(path);
  const problems: Problem[] = [];
  const expect = (field: string, ok: boolean, what: string) => {
    if (!ok)
      problems.push({
        where: path,
        message: `${field}: expected ${what}, got ${JSON.stringify(raw[field])}`,
        fix: 'rewrite mft_training.json or delete it',
      });
  };
  expect('base_model', typeof raw.base_model === 'string', 'a path');
  expect('config_hash', typeof raw.config_hash === 'string', 'a string');
  expect(
    'quantization',
    raw.quantization === 'none' || raw.quantization === 'int8' || raw.quantization === 'nf4',
    '"none", "int8" or "nf4"',
  );
  expect('double_quant', typeof raw.double_quant === 'boolean', 'true or false');
  expect(
    'precision',
    (PRECISIONS as readonly unknown[]).includes(raw.precision),
    `one of ${PRECISIONS.map((p) => JSON.stringify(p)).join(', ')}`,
  );
  if (problems.length > 0) throw new MftError(problems);
  return raw as MftTrainingInfo;
}

/** JSON with keys sorted at every level and 2-space indents, as PEFT writes (`sort_keys=True`). */
function sortedJson(v: unknown): string {
  const sortKeys = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sortKeys);
    if (x && typeof x === 'object') {
      return Object.fromEntries(
        Object.keys(x as object)
          .sort()
          .map((k) => [k, sortKeys((x as Record<string, unknown>)[k])]),
      );
    }
    return x;
  };
  return `${JSON.stringify(sortKeys(v), null, 2)}\n`;
}

/**
 * Save an adapter in PEFT's layout (each file written atomically; `dir` is created if needed).
 * @param dir target folder
 * @param adapter config, fp32 tensors by PEFT key, optional `training` record (mft_training.json)
 * @example saveAdapter(join(runDir, 'adapter'), loraToAdapter(lora, { training }));
 */
export function saveAdapter(dir: string, adapter: PeftAdapter): void {
  const config: Record<string, unknown> = { ...PEFT_DEFAULTS, ...adapter.config };
  const problems = configProblems(`${ADAPTER_CONFIG_FILE} to save in ${dir}`, config);
  if (problems.length > 0) throw new MftError(problems);
  const keys = [...adapter.tensors.keys()].sort();
  const tensors = keys.map((name) => {
    const t = adapter.tensors.get(name) as { shape: number[]; data: Float32Array };
    if (!KEY_RE.test(name)) throw new Error(`saveAdapter: "${name}" is not a PEFT lora_A / lora_B key`);
    return { name, dtype: 'F32' as const, shape: [...t.shape], data: t.data };
  });
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
  writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), sortedJson(config));
  if (adapter.training) writeFileAtomic(join(dir, TRAINING_INFO_FILE), sortedJson(adapter.training));
}
