/**
 * Merge a LoRA adapter into its base model and write a plain Hugging Face model directory:
 *
 *   W' = W + s * B A        s = lora_alpha / r  (rsLoRA: lora_alpha / sqrt(r))
 *                           B [out, r], A [r, in], W [out, in]   (PEFT's LoraLayer.get_delta_weight)
 *
 * computed in fp32 (the r-term dot products accumulate in float64), tensor by tensor: each base
 * tensor is read, merged, narrowed to the output dtype (round to nearest even) and written to its
 * shard before the next one is read, so the whole model is never in memory.
 *
 * The directory is assembled under a temporary sibling and renamed into place when complete.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LINEAR_NAMES, layerWeightNames, readModelSpec, specHash } from '../model/index.js';
import { dequantize, quantize } from '../quant/index.js';
import { TOKENIZER_FILES } from '../tokenizer/index.js';
import { fail, fsyncPath, MftError, type Problem, tempPathFor, writeFileAtomic } from '../util/index.js';
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  INDEX_FILE,
  openCheckpoint,
  type SafetensorsDtype,
  SafetensorsWriter,
  SINGLE_FILE,
  type TensorData,
} from '../weights/index.js';
import { loraScale } from './lora-state.js';
import { checkTrainedBase, loraShapeProblems } from './open-adapter.js';
import type { PeftAdapter } from './peft-adapter.js';

export type MergeDtype = 'fp32' | 'bf16' | 'fp16';
export type MergeBase = 'plain' | 'dequantized';

/** Files of a base model directory copied next to the merged weights (when present). */
export const COPIED_FILES = [
  ...TOKENIZER_FILES,
  'chat_template.json',
  'generation_config.json',
  'LICENSE',
  'LICENSE.txt',
  'LICENSE.md',
  'NOTICE',
  'USE_POLICY.md',
] as const;

const DEFAULT_MAX_SHARD_SIZE = 2_000_000_000;

const TORCH_DTYPE: Record<MergeDtype, string> = { fp32: 'float32', bf16: 'bfloat16', fp16: 'float16' };
const FILE_DTYPE: Record<MergeDtype, SafetensorsDtype> = { fp32: 'F32', bf16: 'BF16', fp16: 'F16' };

/** Prefix PEFT puts before the base model's module path in adapter keys. */
const PEFT_PREFIX = 'base_model.model.';
/** Whether `name` is a decoder linear weight, which QLoRA / int8 training stores quantized (as loadModel does). */
function isQuantizedWeight(name: string): boolean {
  const layer = /^model\.layers\.(\d+)\./.exec(name)?.[1];
  if (layer === undefined) return false;
  const names = layerWeightNames(Number(layer));
  return LINEAR_NAMES.some((n) => names[n] === name);
}

export interface MergeOptions {
  /** Base model directory (config.json + safetensors). */
  model: string;
  /** The loaded adapter and the directory it came from (named in the model card). */
  adapter: PeftAdapter;
  adapterDir: string;
  /** Output directory; must not exist unless `overwrite`. */
  out: string;
  /** Output dtype; default: the dtype of the base checkpoint's weights. */
  dtype?: MergeDtype;
  /** Shard size limit in bytes (default 2 GB); past it, shards + model.safetensors.index.json. */
  maxShardSize?: number;
  /** 'dequantized': merge into the NF4 / int8 round trip of the base the adapter trained against. */
  base?: MergeBase;
  overwrite?: boolean;
  /** The command line, written into the model card. */
  command?: string;
  /** Progress / warning lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface MergeResult {
  out: string;
  dtype: MergeDtype;
  /** Weight files written, in order. */
  files: string[];
  /** Base weights that received a LoRA delta. */
  merged: string[];
  scale: number;
}

/** One adapted base weight: its LoRA factors. */
interface Delta {
  A: { shape: number[]; data: Float32Array };
  B: { shape: number[]; data: Float32Array };
}

/**
 * Parse a size such as `2GB`, `500MB`, `1.5GiB` or `1000000` (bytes). GB = 10^9, GiB = 2^30, as
 * Hugging Face's `max_shard_size`.
 * @example parseSize('2GB') === 2e9
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$/i.exec(text);
  if (!m)
    fail(
      '--max-shard-size',
      `cannot read ${JSON.stringify(text)} as a size`,
      'write e.g. 2GB, 500MB or 1GiB',
    );
  const unit = (m[2] ?? 'B').toLowerCase();
  const factor: Record<string, number> = {
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
    tib: 2 ** 40,
  };
  const bytes = Math.floor(Number(m[1]) * (factor[unit] as number));
  if (bytes < 1) fail('--max-shard-size', `${JSON.stringify(text)} is not a positive size`, 'write e.g. 2GB');
  return bytes;
}

/** Base weight name -> its LoRA factors, checked against the base checkpoint's shapes. */
function planDeltas(
  adapter: PeftAdapter,
  adapterDir: string,
  baseInfo: (name: string) => { shape: number[] } | null,
): Map<string, Delta> {
  const deltas = new Map<string, Delta>();
  const problems: Problem[] = [];
  const fix = 'merge the adapter into the base model it was trained on';
  const file = join(adapterDir, 'adapter_model.safetensors');
  for (const [key, a] of adapter.tensors) {
    if (!key.endsWith('.lora_A.weight')) continue;
    const where = `${file}: ${key}`;
    if (!key.startsWith(PEFT_PREFIX)) {
      problems.push({
        where,
        message: `key does not start with "${PEFT_PREFIX}"`,
        fix: 'save the adapter with PEFT or mft',
      });
      continue;
    }
    const module = key.slice(PEFT_PREFIX.length, -'.lora_A.weight'.length);
    const weight = `${module}.weight`;
    const b = adapter.tensors.get(key.replace(/\.lora_A\.weight$/, '.lora_B.weight'));
    const info = baseInfo(weight);
    if (!b) continue; // loadAdapter already reports an unpaired factor
    if (!info) {
      problems.push({ where, message: `the base model has no weight ${weight}`, fix });
      continue;
    }
    const shapeProblems = loraShapeProblems(adapter, file, key, { name: weight, shape: info.shape });
    if (shapeProblems.length > 0) {
      problems.push(...shapeProblems);
      continue;
    }
    deltas.set(weight, { A: a, B: b });
  }
  if (problems.length > 0) throw new MftError(problems);
  if (deltas.size === 0)
    fail(adapterDir, 'the adapter holds no lora_A / lora_B pairs', 'point at a trained adapter');
  return deltas;
}

/** W += s * B A in place; each output element sums its r products in float64, then rounds once. */
function addDelta(w: Float32Array, d: Delta, s: number, out: number, inp: number): void {
  const r = d.A.shape[0] as number;
  const A = d.A.data;
  const B = d.B.data;
  const acc = new Float64Array(inp);
  for (let o = 0; o < out; o++) {
    acc.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = B[o * r + k] as number;
      if (bk === 0) continue;
      const aRow = k * inp;
      for (let i = 0; i < inp; i++) acc[i] = (acc[i] as number) + bk * (A[aRow + i] as number);
    }
    const row = o * inp;
    for (let i = 0; i < inp; i++) w[row + i] = (w[row + i] as number) + s * (acc[i] as number);
  }
}

/** A checkpoint tensor's values as fp32 (the F32 data itself, or a widened copy of BF16 / F16). */
export function toF32(t: TensorData): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  return t.dtype === 'BF16' ? bf16ToF32(t.data as Uint16Array) : f16ToF32(t.data as Uint16Array);
}

const isFloat = (d: SafetensorsDtype): boolean => d === 'F32' || d === 'BF16' || d === 'F16';

function dtypeOfFile(d: SafetensorsDtype): MergeDtype {
  return d === 'BF16' ? 'bf16' : d === 'F16' ? 'fp16' : 'fp32';
}

/**
 * Merge `opts.adapter` into the base model `opts.model` and write an HF directory at `opts.out`.
 * @param opts model, adapter (+ adapterDir), out, dtype (base's), maxShardSize (2 GB), base ('plain'), overwrite
 * @example
 *   mergeAdapter({ model: 'base', adapter: loadAdapter('run/adapter'), adapterDir: 'run/adapter', out: 'merged' });
 */
export function mergeAdapter(opts: MergeOptions): MergeResult {
  const log = opts.log ?? (() => {});
  const out = resolve(opts.out);
  const modelDir = resolve(opts.model);
  if (out === modelDir || out === resolve(opts.adapterDir)) {
    fail(
      '--out',
      `${opts.out} is the base model or adapter directory`,
      'choose a new directory for the merged model',
    );
  }
  if (existsSync(out) && !opts.overwrite) {
    fail('--out', `${opts.out} already exists`, 'choose another directory or pass --overwrite');
  }
  if (existsSync(out)) checkReplaceable(out, opts.out);
  const maxShard = opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE;
  const base = opts.base ?? 'plain';
  const training = opts.adapter.training;
  if (base === 'dequantized' && (!training || training.quantization === 'none')) {
    fail(
      '--base dequantized',
      training
        ? `the adapter was trained on an unquantized base (${join(opts.adapterDir, 'mft_training.json')}: quantization "none")`
        : `the adapter has no mft_training.json, so how its base was quantized is unknown`,
      'drop --base dequantized (merge into the plain base)',
    );
  }

  const spec = readModelSpec(modelDir);
  const configJson = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  checkTrainedBase(
    { adapter: opts.adapter, dir: opts.adapterDir },
    { dir: opts.model, configHash: specHash(spec) },
  );
  const { r, lora_alpha: alpha, use_rslora: rslora } = opts.adapter.config;
  const scale = loraScale(r, alpha, { rslora: rslora === true });
  const ckpt = openCheckpoint(modelDir);
  const tmp = tempPathFor(out);
  try {
    const names = ckpt.names();
    const infos = new Map(names.map((n) => [n, ckpt.info(n)] as const));
    const deltas = planDeltas(opts.adapter, opts.adapterDir, (n) => infos.get(n) ?? null);
    const firstFloat = names.map((n) => infos.get(n)?.dtype).find((d) => d !== undefined && isFloat(d));
    const dtype = opts.dtype ?? dtypeOfFile(firstFloat ?? 'F32');

    // Output tensors: float ones in the output dtype, others (e.g. I64 buffers) as they are.
    const plan = names.map((name) => {
      const info = infos.get(name) as { dtype: SafetensorsDtype; shape: number[] };
      const fileDtype = isFloat(info.dtype) ? FILE_DTYPE[dtype] : info.dtype;
      return { name, dtype: fileDtype, shape: info.shape, bytes: bytesOf(fileDtype, info.shape) };
    });
    const shards = splitShards(plan, maxShard);
    const fileNames =
      shards.length === 1
        ? [SINGLE_FILE]
        : shards.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`);

    mkdirSync(tmp, { recursive: true });
    const weightMap: Record<string, string> = {};
    const merged: string[] = [];
    for (const [si, shard] of shards.entries()) {
      const file = fileNames[si] as string;
      const writer = new SafetensorsWriter(join(tmp, file), shard, { format: 'pt' });
      try {
        for (const t of shard) {
          const src = ckpt.read(t.name);
          weightMap[t.name] = file;
          if (!isFloat(src.dtype)) {
            writer.write(t.name, src.data);
            continue;
          }
          let w = toF32(src);
          const delta = deltas.get(t.name);
          if (delta) {
            if (base === 'dequantized' && training && isQuantizedWeight(t.name)) {
              w = dequantize(
                quantize(t.name, t.shape, w, training.quantization as 'nf4' | 'int8', {
                  doubleQuant: training.double_quant,
                }),
              );
            } else if (w === src.data) {
              w = new Float32Array(w); // never modify what the reader returned in place
            }
            // W' = W + s * B A
            addDelta(w, delta, scale, t.shape[0] as number, t.shape[1] as number);
            merged.push(t.name);
          } else if (base === 'dequantized' && training && isQuantizedWeight(t.name)) {
            // The adapter also saw the other linear layers quantized: keep the model it trained against.
            w = dequantize(
              quantize(t.name, t.shape, w, training.quantization as 'nf4' | 'int8', {
                doubleQuant: training.double_quant,
              }),
            );
          }
          writer.write(t.name, dtype === 'fp32' ? w : dtype === 'bf16' ? f32ToBf16(w) : f32ToF16(w, t.name));
        }
        writer.finish();
      } catch (e) {
        writer.abort();
        throw e;
      }
      log(`wrote ${file} (${shard.length} tensors)`);
    }
    if (shards.length > 1) {
      const totalSize = plan.reduce((a, t) => a + t.bytes, 0);
      writeFileAtomic(
        join(tmp, INDEX_FILE),
        `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`,
      );
    }
    const newConfig: Record<string, unknown> = { ...configJson, torch_dtype: TORCH_DTYPE[dtype] };
    if ('dtype' in configJson) newConfig.dtype = TORCH_DTYPE[dtype]; // newer transformers' name for it
    writeFileAtomic(join(tmp, 'config.json'), `${JSON.stringify(newConfig, null, 2)}\n`);
    const copied: string[] = [];
    for (const f of COPIED_FILES) {
      const src = join(modelDir, f);
      if (existsSync(src) && statSync(src).isFile()) {
        copyFileSync(src, join(tmp, f));
        copied.push(f);
      }
    }
    writeFileAtomic(
      join(tmp, 'README.md'),
      modelCard({ ...opts, out, dtype, base, scale, merged: merged.length, copied }),
    );
    fsyncPath(tmp);
    replaceDir(tmp, out);
    return { out, dtype, files: fileNames, merged, scale };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    ckpt.close();
  }
}

function bytesOf(dtype: SafetensorsDtype, shape: number[]): number {
  const item =
    dtype === 'F32' || dtype === 'I32' ? 4 : dtype === 'I64' ? 8 : dtype === 'U8' || dtype === 'BOOL' ? 1 : 2;
  return shape.reduce((a, b) => a * b, item);
}

/**
 * Greedy split in checkpoint order: a shard takes tensors while its size stays within `max`
 * (a single tensor larger than `max` gets a shard of its own), as transformers' save_pretrained.
 */
function splitShards<T extends { bytes: number }>(tensors: T[], max: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const t of tensors) {
    if (current.length > 0 && size + t.bytes > max) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

const pad5 = (n: number): string => String(n).padStart(5, '0');

/** Whether `name` is a file `mft merge` writes into its output folder. */
function isMergeOutput(name: string): boolean {
  return (
    name === 'config.json' ||
    name === 'README.md' ||
    name === 'model.safetensors' ||
    name === INDEX_FILE ||
    /^model-\d{5}-of-\d{5}\.safetensors$/.test(name) ||
    (COPIED_FILES as readonly string[]).includes(name)
  );
}

/**
 * --overwrite replaces only a model an earlier `mft merge` wrote (its model card says so, and every
 * file is one a merge writes): the user's other files are never deleted, as in mft train.
 */
function checkReplaceable(out: string, shown: string): void {
  if (!statSync(out).isDirectory()) fail('--out', `${shown} is a file, not a folder`, 'choose a new folder');
  const entries = readdirSync(out);
  if (entries.length === 0) return;
  const foreign = entries.filter((n) => !isMergeOutput(n));
  const card = join(out, 'README.md');
  const ours =
    existsSync(card) && readFileSync(card, 'utf8').includes('merged into its weights by `mft merge`');
  if (foreign.length > 0 || !ours) {
    const listed = foreign.length > 0 ? foreign : entries;
    const has = `${listed.slice(0, 3).join(', ')}${listed.length > 3 ? ', ...' : ''}`;
    fail(
      '--out',
      `${shown} does not hold a model mft merge wrote (it has ${has}); --overwrite replaces only that`,
      'choose a new --out folder',
    );
  }
}

/** Put the finished `tmp` at `out`; an existing `out` (overwrite) is moved aside first, then removed. */
function replaceDir(tmp: string, out: string): void {
  let old: string | null = null;
  if (existsSync(out)) {
    old = `${tempPathFor(out)}-old`;
    renameSync(out, old);
  }
  renameSync(tmp, out);
  fsyncPath(dirname(out));
  if (old) rmSync(old, { recursive: true, force: true });
}

function modelCard(o: {
  model: string;
  adapterDir: string;
  adapter: PeftAdapter;
  out: string;
  dtype: MergeDtype;
  base: MergeBase;
  scale: number;
  merged: number;
  copied: string[];
  command?: string;
}): string {
  const c = o.adapter.config;
  const targets = Array.isArray(c.target_modules) ? c.target_modules.join(', ') : c.target_modules;
  const formula = c.use_rslora
    ? `lora_alpha / sqrt(r) = ${c.lora_alpha} / sqrt(${c.r})`
    : `lora_alpha / r = ${c.lora_alpha} / ${c.r}`;
  const q = o.adapter.training?.quantization ?? 'none';
  const baseLine =
    o.base === 'dequantized'
      ? `the ${q}-dequantized base weights the adapter was trained against (quantized then dequantized again)`
      : 'the plain (unquantized) base weights';
  const lines = [
    '---',
    'library_name: transformers',
    'tags:',
    '- mft',
    '- lora',
    '- merged',
    '---',
    `# ${basename(o.out)}`,
    '',
    `The base model \`${o.model}\` with the LoRA adapter \`${o.adapterDir}\` merged into its weights by \`mft merge\`.`,
    '',
    `- Base model: \`${o.model}\`${c.base_model_name_or_path ? ` (adapter_config.json names \`${c.base_model_name_or_path}\`)` : ''}`,
    `- Adapter: \`${o.adapterDir}\`: r = ${c.r}, lora_alpha = ${c.lora_alpha}, target modules: ${targets}${
      o.adapter.training ? `; trained with quantization ${q}, precision ${o.adapter.training.precision}` : ''
    }`,
    `- Merge: W' = W + s * B A with s = ${formula} = ${o.scale}, into ${baseLine}; ${o.merged} weights changed`,
    `- Weights dtype: ${TORCH_DTYPE[o.dtype]}${o.dtype === 'fp32' ? '' : ' (rounded to nearest even from fp32)'}`,
    `- Copied from the base: config.json (torch_dtype updated)${o.copied.length ? `, ${o.copied.join(', ')}` : ''}`,
    '',
    "The base model's licence and terms apply to this model.",
  ];
  if (o.command) lines.push('', 'Reproduce with:', '', '```', o.command, '```');
  return `${lines.join('\n')}\n`;
}
