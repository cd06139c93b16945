/**
 * mft merge: merged weights against an independent float64 W + s * B @ A computed here, output
 * layout (shards, index, config.json, copied files), dtype rounding, refusals, adapter resolution,
 * and the merged model's logits against the fixture's `lora_logits` (computed outside this project).
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { mergeAdapter, parseSize } from '../../src/lora/merge.js';
import { loadAdapter, type PeftAdapter } from '../../src/lora/peft-adapter.js';
import { forward, loadModel, readModelSpec, specHash } from '../../src/model/index.js';
import { dequantize, quantize } from '../../src/quant/index.js';
import { openCheckpoint, SafetensorsFile } from '../../src/weights/index.js';
import { onBackends } from '../helpers/backends.js';
import { errorOf } from '../helpers/error-of.js';
import { causalBatch, relMaxErr } from '../helpers/golden.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const BASE = 'test/fixtures/llama-golden';
const ADAPTER = `${BASE}/adapter`;
const root = fileTempDir('merge');
let n = 0;
const fresh = (name: string) => join(root, `${name}-${n++}`);

const baseFile = SafetensorsFile.open(`${BASE}/model.safetensors`);
const adapterFile = SafetensorsFile.open(`${ADAPTER}/adapter_model.safetensors`);
const f32 = (f: SafetensorsFile, name: string) => f.read(name).data as Float32Array;
const TARGETS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
].flatMap((m) => [0, 1].map((l) => `model.layers.${l}.${m}`));

/** float64 reference: W + s * B @ A, from the raw fixture tensors. */
function reference(
  module: string,
  s: number,
  w = Float64Array.from(f32(baseFile, `${module}.weight`)),
): Float64Array {
  const a = f32(adapterFile, `base_model.model.${module}.lora_A.weight`);
  const b = f32(adapterFile, `base_model.model.${module}.lora_B.weight`);
  const [out, inp] = baseFile.info(`${module}.weight`).shape as [number, number];
  const r = 4;
  const res = new Float64Array(w);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inp; i++) {
      let dot = 0;
      for (let k = 0; k < r; k++) dot += (b[o * r + k] as number) * (a[k * inp + i] as number);
      res[o * inp + i] = (res[o * inp + i] as number) + s * dot;
    }
  }
  return res;
}

/**
 * Indices where `got` is further than half an ulp (of a float with `bits` significant bits and
 * smallest normal 2^minExp) from the float64 `ref`: a correctly rounded result has none.
 */
function notNearest(got: ArrayLike<number>, ref: ArrayLike<number>, bits = 24, minExp = -126): number[] {
  const bad: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    const x = ref[i] as number;
    const halfUlp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(x))), minExp) - bits);
    // A hair of slack: the result went through fp32 before a 16-bit rounding.
    if (Math.abs((got[i] as number) - x) > halfUlp * (1 + 2 ** -12)) bad.push(i);
  }
  return bad;
}

/** Byte equality of two typed arrays (fast; vitest's deep equality walks every element). */
const sameBytes = (x: ArrayBufferView, y: ArrayBufferView): boolean =>
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs((x[i] as number) - (y[i] as number)));
  return m;
}

/** Value of a 16-bit word from the definition: bf16 (8-bit exponent) or f16 (5-bit exponent). */
function wordValue(h: number, kind: 'bf16' | 'fp16'): number {
  const [eb, mb] = kind === 'bf16' ? [8, 7] : [5, 10];
  const bias = 2 ** (eb - 1) - 1;
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> mb) & (2 ** eb - 1);
  const m = h & (2 ** mb - 1);
  return e === 0 ? s * m * 2 ** (1 - bias - mb) : s * 2 ** (e - bias) * (1 + m / 2 ** mb);
}

const merge = (out: string, extra: Partial<Parameters<typeof mergeAdapter>[0]> = {}) =>
  mergeAdapter({ model: BASE, adapter: loadAdapter(ADAPTER), adapterDir: ADAPTER, out, ...extra });

describe('mergeAdapter', () => {
  test('fp32: every target weight equals W + (alpha / r) B A computed in float64', () => {
    const out = fresh('fp32');
    const r = merge(out);
    expect(r.scale).toBe(2);
    expect(r.merged.sort()).toEqual(TARGETS.map((t) => `${t}.weight`).sort());
    expect(readdirSync(out).sort()).toEqual(['README.md', 'config.json', 'model.safetensors']);
    const m = SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(m.names().sort()).toEqual(baseFile.names().sort());
    expect(m.metadata).toEqual({ format: 'pt' });
    for (const t of TARGETS) {
      const got = f32(m, `${t}.weight`);
      const ref = reference(t, 2);
      // The fp32 result is the float64 value rounded once.
      expect(notNearest(got, ref), t).toEqual([]);
      // ...and the delta is really there.
      expect(maxAbsDiff(got, f32(baseFile, `${t}.weight`)), t).toBeGreaterThan(1e-3);
    }
    for (const name of [
      'model.embed_tokens.weight',
      'model.norm.weight',
      'model.layers.1.input_layernorm.weight',
    ]) {
      expect(sameBytes(f32(m, name), f32(baseFile, name)), name).toBe(true);
    }
    m.close();
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toEqual(JSON.parse(readFileSync(`${BASE}/config.json`, 'utf8')));
    const card = readFileSync(join(out, 'README.md'), 'utf8');
    expect(card).toContain(`base model \`${BASE}\``);
    expect(card).toContain(`adapter \`${ADAPTER}\``);
    expect(readdirSync(root).filter((f) => f.startsWith('.mft-tmp'))).toEqual([]);
  });

  test('rsLoRA scales by alpha / sqrt(r)', () => {
    const adapter = loadAdapter(ADAPTER);
    adapter.config.use_rslora = true;
    const out = fresh('rs');
    const r = mergeAdapter({ model: BASE, adapter, adapterDir: ADAPTER, out });
    expect(r.scale).toBe(4); // 8 / sqrt(4)
    const m = SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(
      notNearest(f32(m, 'model.layers.0.mlp.up_proj.weight'), reference('model.layers.0.mlp.up_proj', 4)),
    ).toEqual([]);
    m.close();
  });

  for (const kind of ['bf16', 'fp16'] as const) {
    test(`${kind}: each value is the 16-bit value nearest to the float64 result`, () => {
      const out = fresh(kind);
      merge(out, { dtype: kind });
      const m = SafetensorsFile.open(join(out, 'model.safetensors'));
      const [bits, minExp] = kind === 'bf16' ? [8, -126] : [11, -14]; // significant bits, smallest normal
      for (const name of [...TARGETS.map((t) => `${t}.weight`), 'model.norm.weight']) {
        const t = m.read(name);
        expect(t.dtype).toBe(kind === 'bf16' ? 'BF16' : 'F16');
        const module = name.replace(/\.weight$/, '');
        const ref = TARGETS.includes(module) ? reference(module, 2) : Float64Array.from(f32(baseFile, name));
        const values = Array.from(t.data as Uint16Array, (h) => wordValue(h, kind));
        expect(notNearest(values, ref, bits, minExp), name).toEqual([]);
      }
      m.close();
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype).toBe(
        kind === 'bf16' ? 'bfloat16' : 'float16',
      );
    });
  }

  test('shards past --max-shard-size, with an index naming every tensor', () => {
    const single = fresh('single');
    merge(single);
    const out = fresh('sharded');
    const r = merge(out, { maxShardSize: parseSize('100KB') });
    expect(r.files.length).toBeGreaterThan(2);
    expect(r.files[0]).toBe(`model-00001-of-0000${r.files.length}.safetensors`);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map).sort()).toEqual(baseFile.names().sort());
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(r.files));
    let total = 0;
    for (const f of r.files) {
      const s = SafetensorsFile.open(join(out, f));
      const bytes = s.names().reduce((a, nm) => a + s.info(nm).byteLength, 0);
      expect(bytes).toBeLessThanOrEqual(100_000);
      total += bytes;
      s.close();
    }
    expect(index.metadata.total_size).toBe(total);
    const a = openCheckpoint(out);
    const b = openCheckpoint(single);
    for (const name of b.names()) expect(sameBytes(a.read(name).data, b.read(name).data), name).toBe(true);
    a.close();
    b.close();
  });

  test('copies tokenizer and generation files, not other files', () => {
    const base = fresh('base-with-tok');
    mkdirSync(base);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(`${BASE}/${f}`, join(base, f));
    copyFileSync('test/fixtures/tokenizers/tinyllama/tokenizer.json', join(base, 'tokenizer.json'));
    copyFileSync(
      'test/fixtures/tokenizers/tinyllama/tokenizer_config.json',
      join(base, 'tokenizer_config.json'),
    );
    writeFileSync(join(base, 'generation_config.json'), '{"bos_token_id": 1}');
    writeFileSync(join(base, 'notes.txt'), 'not copied');
    const out = fresh('tok');
    mergeAdapter({ model: base, adapter: loadAdapter(ADAPTER), adapterDir: ADAPTER, out });
    expect(readdirSync(out).sort()).toEqual(
      [
        'README.md',
        'config.json',
        'generation_config.json',
        'model.safetensors',
        'tokenizer.json',
        'tokenizer_config.json',
      ].sort(),
    );
    expect(readFileSync(join(out, 'tokenizer.json')).equals(readFileSync(join(base, 'tokenizer.json')))).toBe(
      true,
    );
  });

  test('refuses an existing --out unless overwrite, and the base directory itself', () => {
    const out = fresh('exists');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'x');
    expect(errorOf(() => merge(out))).toBe(
      `--out: ${out} already exists (fix: choose another directory or pass --overwrite)`,
    );
    expect(existsSync(join(out, 'keep.txt'))).toBe(true);
    // --overwrite deletes only what a merge wrote: a folder with the user's file is refused
    expect(errorOf(() => merge(out, { overwrite: true }))).toBe(
      `--out: ${out} does not hold a model mft merge wrote (it has keep.txt); --overwrite replaces only that (fix: choose a new --out folder)`,
    );
    expect(readFileSync(join(out, 'keep.txt'), 'utf8')).toBe('x');
    rmSync(join(out, 'keep.txt'));
    merge(out, { overwrite: true }); // empty: written
    merge(out, { overwrite: true }); // an earlier merge: replaced
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
    // a merged model with a file of the user's beside it is refused too
    writeFileSync(join(out, 'notes.md'), 'mine');
    expect(errorOf(() => merge(out, { overwrite: true }))).toContain('(it has notes.md)');
    expect(errorOf(() => merge(BASE, { overwrite: true }))).toContain(
      'is the base model or adapter directory',
    );
  });

  test('an fp16 overflow names the tensor and leaves nothing behind', () => {
    const adapter = loadAdapter(ADAPTER);
    const key = 'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight';
    adapter.tensors.get(key)?.data.fill(1e6);
    const out = fresh('overflow');
    expect(
      errorOf(() => mergeAdapter({ model: BASE, adapter, adapterDir: ADAPTER, out, dtype: 'fp16' })),
    ).toMatch(/^model\.layers\.1\.mlp\.down_proj\.weight: value .* is outside the float16 range/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(root).filter((f) => f.startsWith('.mft-tmp'))).toEqual([]);
  });

  test('an adapter for another model is an error naming the tensor', () => {
    const adapter = loadAdapter(ADAPTER);
    const a = adapter.tensors.get(
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
    ) as PeftAdapter['tensors'] extends Map<string, infer V> ? V : never;
    const b = adapter.tensors.get(
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
    ) as typeof a;
    adapter.tensors.set('base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight', a);
    adapter.tensors.set('base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight', b);
    adapter.tensors.set('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight', b); // [64, 4] where [32, 4] fits
    const msg = errorOf(() => mergeAdapter({ model: BASE, adapter, adapterDir: ADAPTER, out: fresh('x') }));
    expect(msg).toContain(
      'layers.7.self_attn.q_proj.lora_A.weight: the base model has no weight model.layers.7.self_attn.q_proj.weight',
    );
    expect(msg).toContain(
      'layers.0.self_attn.k_proj.lora_B.weight: shape [64, 4] does not fit the base model: expected [32, 4] for model.layers.0.self_attn.k_proj.weight [32, 64]',
    );
  });

  test('--base dequantized merges into the NF4 round trip of every decoder linear weight', () => {
    const adapter = loadAdapter(ADAPTER);
    adapter.training = {
      base_model: BASE,
      config_hash: specHash(readModelSpec(BASE)),
      quantization: 'nf4',
      double_quant: true,
      precision: 'fp32',
    };
    const out = fresh('deq');
    mergeAdapter({ model: BASE, adapter, adapterDir: ADAPTER, out, base: 'dequantized' });
    const m = SafetensorsFile.open(join(out, 'model.safetensors'));
    for (const t of TARGETS) {
      const name = `${t}.weight`;
      const w = f32(baseFile, name);
      const deq = dequantize(quantize(name, baseFile.info(name).shape, w, 'nf4', { doubleQuant: true }));
      const got = f32(m, name);
      expect(notNearest(got, reference(t, 2, Float64Array.from(deq))), t).toEqual([]);
      expect(maxAbsDiff(got, reference(t, 2)), t).toBeGreaterThan(1e-3); // not the plain merge
    }
    expect(sameBytes(f32(m, 'model.norm.weight'), f32(baseFile, 'model.norm.weight'))).toBe(true);
    m.close();
    expect(errorOf(() => merge(fresh('noq'), { base: 'dequantized' }))).toContain(
      'the adapter has no mft_training.json',
    );
  });
});

describe('parseSize', () => {
  test('decimal and binary units, as transformers', () => {
    expect(parseSize('2GB')).toBe(2e9);
    expect(parseSize('500MB')).toBe(5e8);
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('1.5kb')).toBe(1500);
    expect(parseSize('4096')).toBe(4096);
    expect(() => parseSize('lots')).toThrow('--max-shard-size: cannot read "lots" as a size');
  });
});

onBackends(['wasm', 'cpu', 'webgpu'], 'the merged model', (backend) => {
  test('reproduces lora_logits and lora_loss of the fixture (computed outside mft)', async () => {
    await initBackend(backend);
    const out = fresh(`logits-${backend}`);
    merge(out);
    const golden = SafetensorsFile.open(`${BASE}/golden.safetensors`);
    const ids = golden.read('input_ids').data as Int32Array;
    const ref = golden.read('lora_logits').data as Float32Array;
    golden.close();
    const batch = causalBatch(ids, 2, 24);
    const model = await loadModel(out);
    const r = await forward(model, batch, { returnLogits: true });
    expect(relMaxErr(r.logits as Float32Array, ref)).toBeLessThan(1e-4);
    const goldenJson = JSON.parse(readFileSync(`${BASE}/golden.json`, 'utf8'));
    expect(Math.abs(r.lossSum / r.count - goldenJson.lora_loss)).toBeLessThan(1e-4);
  });
});
