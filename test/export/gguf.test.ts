/**
 * GGUF export, checked by an independent reader: llama.cpp itself (the prebuilt binary that the
 * node-llama-cpp package ships) loads the files mft writes.
 * - tinystories-260k: llama.cpp's tokenizer gives mft's ids and its greedy tokens equal mft's.
 * - llama-golden (logits computed by PyTorch outside mft): f32 logits within 1e-4 relative, for the
 *   base model, the adapter merged in (--adapter) and the adapter as a GGUF LoRA (--lora-only);
 *   q8_0 and f16 within a looser bound, their error printed.
 * llama.cpp returns probabilities, not logits: logits are compared centred (log p - mean log p),
 * which is what a softmax keeps of them.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { exportGguf, permuteRopeRows, quantizeQ8_0 } from '../../src/export/gguf-model.js';
import { loadAdapter, type PeftAdapter } from '../../src/lora/peft-adapter.js';
import { generate, loadModel } from '../../src/model/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { Rng } from '../../src/util/index.js';
import { SafetensorsFile } from '../../src/weights/index.js';
import { GOLDEN_DIR, relMaxErr } from '../helpers/golden.js';
import { fileTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { referenceLogits } from '../model/reference-decoder.js';
import { type TinyModel, type TinyOptions, writeTinyModel } from '../model/tiny-model.js';

const STORIES = 'checkpoints/base/tinystories-260k';
const root = fileTempDir('gguf');
let llama: Llama;

beforeAll(async () => {
  await initBackend('wasm');
  // build: 'never' — only the prebuilt binary from npm, never a download or a source build.
  llama = await getLlama({ build: 'never', gpu: false, logLevel: LlamaLogLevel.error });
}, 60_000);
afterAll(async () => {
  await llama?.dispose();
  removeTempDirs();
});

/** llama-golden plus a byte-fallback tokenizer of its 384 ids (the fixture has none; GGUF needs one). */
function goldenWithTokenizer(): string {
  const dir = join(root, 'golden');
  if (existsSync(join(dir, 'tokenizer.json'))) return dir;
  mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(GOLDEN_DIR, f), join(dir, f));
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 259; i < 384; i++) vocab[`▁${letters[i % 26]}${letters[Math.floor(i / 26) % 26]}`] = i;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizer = {
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true }),
  );
  return dir;
}

const golden = SafetensorsFile.open(join(GOLDEN_DIR, 'golden.safetensors'));
const inputIds = golden.read('input_ids').data as Int32Array; // [2, 24]
const T = 24;
const V = 384;

/** Centred next-token logits [T, V] of one row as llama.cpp computes them (from its probabilities). */
async function llamaCppLogits(
  model: LlamaModel,
  ids: number[],
  lora?: string,
  V = 384,
): Promise<Float64Array> {
  // An f32 KV cache (llama.cpp's default is f16), one thread (the machine is shared).
  const ctx = await model.createContext({
    contextSize: 64,
    threads: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    ...(lora ? { lora } : {}),
  });
  try {
    const seq = ctx.getSequence();
    const items = ids.map(
      (id) =>
        [
          id,
          { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } },
        ] as [number, object],
    );
    const res = await seq.controlledEvaluate(items as Parameters<typeof seq.controlledEvaluate>[0]);
    const out = new Float64Array(ids.length * V);
    for (let t = 0; t < ids.length; t++) {
      const probs = res[t]?.next?.probabilities;
      expect(probs?.size).toBe(V);
      for (const [id, p] of probs as Map<number, number>) out[t * V + id] = Math.log(p);
      centre(out.subarray(t * V, (t + 1) * V));
    }
    return out;
  } finally {
    await ctx.dispose();
  }
}

function centre(row: Float64Array): void {
  let mean = 0;
  for (const v of row) mean += v / row.length;
  for (let i = 0; i < row.length; i++) row[i] = (row[i] as number) - mean;
}

/** The golden logits of row b, centred per position. */
function goldenLogits(name: 'logits' | 'lora_logits', b: number): Float64Array {
  const all = golden.read(name).data as Float32Array;
  const out = Float64Array.from(all.subarray(b * T * V, (b + 1) * T * V));
  for (let t = 0; t < T; t++) centre(out.subarray(t * V, (t + 1) * V));
  return out;
}

async function goldenError(file: string, name: 'logits' | 'lora_logits', lora?: string): Promise<number> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    let err = 0;
    for (let b = 0; b < 2; b++) {
      const ids = Array.from(inputIds.subarray(b * T, (b + 1) * T));
      err = Math.max(err, relMaxErr(await llamaCppLogits(model, ids, lora), goldenLogits(name, b)));
    }
    return err;
  } finally {
    await model.dispose();
  }
}

describe('GGUF files that llama.cpp reads', () => {
  test('tinystories-260k: same tokens and the same greedy continuation as mft', async () => {
    const file = join(root, 'stories-f32.gguf');
    await exportGguf({ model: STORIES, out: file, type: 'f32' });
    expect(readFileSync(file).subarray(0, 4).toString()).toBe('GGUF');
    const tok = await loadTokenizer(STORIES);
    const prompt = 'Once upon a time, there was a little dog';
    const mftIds = tok.encode(prompt);
    const model = await llama.loadModel({ modelPath: file });
    try {
      expect([model.tokens.bos, ...model.tokenize(prompt)]).toEqual(mftIds);
      const ctx = await model.createContext({ contextSize: 256, threads: 1 });
      const cpp: number[] = [];
      for await (const t of ctx.getSequence().evaluate(mftIds as Token[], { temperature: 0 })) {
        cpp.push(t);
        if (cpp.length === 48) break;
      }
      await ctx.dispose();
      const loaded = await loadModel(STORIES);
      const ours = await generate(loaded, tok, mftIds, {
        maxNewTokens: 48,
        temperature: 0,
        topP: 1,
        seed: 0,
      });
      expect(cpp).toEqual(ours.slice(0, cpp.length));
      expect(cpp.length).toBeGreaterThan(20);
    } finally {
      await model.dispose();
    }
  }, 120_000);

  test('llama-golden f32: logits within 1e-4 of PyTorch', async () => {
    const file = join(root, 'golden-f32.gguf');
    await exportGguf({ model: goldenWithTokenizer(), out: file, type: 'f32' });
    const err = await goldenError(file, 'logits');
    console.log(`llama-golden f32 GGUF in llama.cpp: logits rel. max error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  }, 120_000);

  test('llama-golden f16 and q8_0: the quantization error, printed', async () => {
    for (const [type, bound] of [
      ['f16', 5e-3],
      ['q8_0', 6e-2],
    ] as const) {
      const file = join(root, `golden-${type}.gguf`);
      await exportGguf({ model: goldenWithTokenizer(), out: file, type });
      const err = await goldenError(file, 'logits');
      console.log(`llama-golden ${type} GGUF in llama.cpp: logits rel. max error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(bound);
      expect(err).toBeGreaterThan(1e-6); // it really is quantized
    }
  }, 120_000);

  test('llama-golden with its adapter: merged (--adapter) and as a GGUF LoRA (--lora-only)', async () => {
    const adapterDir = join(GOLDEN_DIR, 'adapter');
    const adapter = { adapter: loadAdapter(adapterDir), dir: adapterDir };
    const merged = join(root, 'golden-merged.gguf');
    await exportGguf({ model: goldenWithTokenizer(), adapter, out: merged, type: 'f32' });
    const mergedErr = await goldenError(merged, 'lora_logits');
    const base = join(root, 'golden-base.gguf');
    await exportGguf({ model: goldenWithTokenizer(), out: base, type: 'f32' });
    const loraFile = join(root, 'golden-lora.gguf');
    await exportGguf({ model: goldenWithTokenizer(), adapter, out: loraFile, type: 'f32', loraOnly: true });
    const loraErr = await goldenError(base, 'lora_logits', loraFile);
    console.log(
      `llama-golden + adapter in llama.cpp: merged ${mergedErr.toExponential(2)}, GGUF LoRA ${loraErr.toExponential(2)}`,
    );
    expect(mergedErr).toBeLessThan(1e-4);
    expect(loraErr).toBeLessThan(1e-4);
  }, 120_000);
});

describe('GGUF conversions', () => {
  test('rotary permutation: row (head, half, j) moves to (head, j, half)', () => {
    // 1 head of dim 4, 1 column: rows [a0 a1 | b0 b1] -> [a0 b0 a1 b1]
    expect(Array.from(permuteRopeRows(Float32Array.from([10, 11, 20, 21]), 1, 1))).toEqual([10, 20, 11, 21]);
  });
  test('q8_0 block: f16 scale max|x|/127, values rounded half away from zero', () => {
    const x = new Float32Array(32);
    x[0] = 127;
    x[1] = -63.5;
    x[2] = 0.4;
    const q = quantizeQ8_0(x);
    expect(q.length).toBe(34);
    expect(new DataView(q.buffer).getUint16(0, true)).toBe(0x3c00); // 1.0 in f16
    expect(new Int8Array(q.buffer, 2, 3)).toEqual(Int8Array.from([127, -64, 0]));
  });
});

describe('GGUF tokenizers and RoPE scaling in llama.cpp', () => {
  /** A random tiny Llama with the vocabulary of a tokenizer fixture, its tokenizer files copied in. */
  function tinyWith(tokenizer: string, vocab: number, opts: TinyOptions = {}): TinyModel {
    const m = writeTinyModel({ vocab, headDim: 8, tie: false, scale: 1.5, ...opts });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      const src = join('test/fixtures/tokenizers', tokenizer, f);
      if (existsSync(src)) copyFileSync(src, join(m.dir, f));
    }
    return m;
  }

  test.each([
    ['tinyllama', 32000],
    ['gpt2', 50257],
    ['smollm2-135m-instruct', 49152],
  ] as const)(
    '%s: llama.cpp tokenizes as the reference (SentencePiece for a SentencePiece vocabulary, else tokenizers)',
    async (name, vocab) => {
      const m = tinyWith(name, vocab);
      const file = join(root, `tok-${name}.gguf`);
      await exportGguf({ model: m.dir, out: file, type: 'f32' });
      const model = await llama.loadModel({ modelPath: file });
      try {
        const expected = JSON.parse(
          readFileSync(join('test/fixtures/tokenizers', name, 'expected_encodings.json'), 'utf8'),
        ) as { cases: { text: string; ids_no_special: number[]; spm_ids?: number[] }[] };
        for (const c of expected.cases) {
          // A SentencePiece vocabulary's reference is SentencePiece itself (llama.cpp implements it),
          // which differs from the tokenizers library on runs of spaces; it reads "<s>" as text.
          const special = c.spm_ids === undefined;
          expect([c.text, model.tokenize(c.text, special)]).toEqual([c.text, c.spm_ids ?? c.ids_no_special]);
        }
      } finally {
        await model.dispose();
      }
    },
    120_000,
  );

  /** llama.cpp's centred logits of `file` on `ids` against the float64 reference's. */
  async function referenceError(
    m: TinyModel,
    file: string,
    ids: number[],
    Vt: number,
    opts: { lora?: string; refLora?: Parameters<typeof referenceLogits>[5] } = {},
  ): Promise<number> {
    const want = Float64Array.from(
      referenceLogits(m.ref, m.weights, ids, undefined, undefined, opts.refLora),
    );
    for (let t = 0; t < ids.length; t++) centre(want.subarray(t * Vt, (t + 1) * Vt));
    const model = await llama.loadModel({ modelPath: file });
    try {
      return relMaxErr(await llamaCppLogits(model, ids, opts.lora, Vt), want);
    } finally {
      await model.dispose();
    }
  }

  const someIds = (n: number, vocab: number) =>
    Array.from({ length: n }, (_, i) => 100 + ((i * 7919) % (vocab - 200)));

  test('Qwen2 (qwen2 architecture, q/k/v biases, tied embeddings): logits as the float64 reference', async () => {
    const m = tinyWith('gpt2', 50257, { architecture: 'Qwen2ForCausalLM', headDim: 4, tie: true });
    const file = join(root, 'qwen2.gguf');
    await exportGguf({ model: m.dir, out: file, type: 'f32' });
    expect(await referenceError(m, file, someIds(32, 50257), 50257)).toBeLessThan(1e-4);
  }, 120_000);

  test('Qwen2 adapter as a GGUF LoRA on its base: logits as the reference with the adapter', async () => {
    const m = tinyWith('gpt2', 50257, { architecture: 'Qwen2ForCausalLM', headDim: 4, seed: 3 });
    const r = 4;
    const alpha = 8;
    const rng = new Rng(7);
    const tensors: PeftAdapter['tensors'] = new Map();
    const refLora = new Map<string, { A: Float64Array; B: Float64Array; r: number; scale: number }>();
    for (let l = 0; l < 2; l++) {
      for (const [mod, out] of [
        ['self_attn.q_proj', 16],
        ['self_attn.k_proj', 8],
        ['mlp.down_proj', 16],
      ] as const) {
        const inDim = mod === 'mlp.down_proj' ? 24 : 16;
        const A = Float32Array.from({ length: r * inDim }, () => rng.next() - 0.5);
        const B = Float32Array.from({ length: out * r }, () => rng.next() - 0.5);
        const key = `base_model.model.model.layers.${l}.${mod}`;
        tensors.set(`${key}.lora_A.weight`, { shape: [r, inDim], data: A });
        tensors.set(`${key}.lora_B.weight`, { shape: [out, r], data: B });
        refLora.set(`model.layers.${l}.${mod}`, {
          A: Float64Array.from(A),
          B: Float64Array.from(B),
          r,
          scale: alpha / r,
        });
      }
    }
    const adapter: PeftAdapter = {
      config: {
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        r,
        lora_alpha: alpha,
        lora_dropout: 0,
        target_modules: ['q_proj', 'k_proj', 'down_proj'],
        bias: 'none',
        use_rslora: false,
        fan_in_fan_out: false,
        base_model_name_or_path: null,
        inference_mode: true,
      },
      tensors,
    };
    const base = join(root, 'qwen2-base.gguf');
    const lora = join(root, 'qwen2-lora.gguf');
    await exportGguf({ model: m.dir, out: base, type: 'f32' });
    await exportGguf({
      model: m.dir,
      adapter: { adapter, dir: m.dir },
      out: lora,
      type: 'f32',
      loraOnly: true,
    });
    const ids = someIds(24, 50257);
    expect(await referenceError(m, base, ids, 50257, { lora, refLora })).toBeLessThan(1e-4);
    // The adapter changes the output: the comparison is not the base's against itself.
    expect(await referenceError(m, base, ids, 50257, { lora })).toBeGreaterThan(1e-2);
  }, 120_000);

  test("Llama with attention_bias (q, k, v and o biases): the biases' rows permuted as the weights'", async () => {
    const m = tinyWith('tinyllama', 32000, { attentionBias: true });
    const file = join(root, 'llama-bias.gguf');
    await exportGguf({ model: m.dir, out: file, type: 'f32' });
    expect(await referenceError(m, file, someIds(32, 32000), 32000)).toBeLessThan(1e-4);
  }, 120_000);

  test('Mistral with a sliding window shorter than the context: exported, and the log says what is lost', async () => {
    const m = tinyWith('tinyllama', 32000, {
      architecture: 'MistralForCausalLM',
      extra: { sliding_window: 8 },
      windows: [8, 8],
    });
    const lines: string[] = [];
    const file = join(root, 'mistral-window.gguf');
    await exportGguf({ model: m.dir, out: file, type: 'f32', log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/sliding_window 8 is not written: .*past 8 tokens differ/);
    // Within the window the two attend alike.
    expect(await referenceError(m, file, someIds(8, 32000), 32000)).toBeLessThan(1e-4);
  }, 120_000);

  test('a Qwen2 whose heads do not span hidden_size is refused with the reason (llama.cpp cannot load it)', async () => {
    const m = tinyWith('gpt2', 50257, { architecture: 'Qwen2ForCausalLM', headDim: 8 });
    await expect(
      exportGguf({ model: m.dir, out: join(root, 'qwen2-bad.gguf'), type: 'f32' }),
    ).rejects.toThrow(/config\.json: head_dim 8 x 4 heads is not hidden_size 16/);
  });

  test('Llama 3 RoPE scaling (rope_freqs) and an untied output: logits as the float64 reference', async () => {
    const scaling = {
      rope_type: 'llama3' as const,
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 16,
    };
    const m = tinyWith('tinyllama', 32000, { ropeScaling: scaling });
    const file = join(root, 'rope-llama3.gguf');
    await exportGguf({ model: m.dir, out: file, type: 'f32' });
    const ids = Array.from({ length: 40 }, (_, i) => 100 + ((i * 7919) % 31000));
    const Vt = 32000;
    const ref = referenceLogits(m.ref, m.weights, ids);
    const want = Float64Array.from(ref);
    for (let t = 0; t < ids.length; t++) centre(want.subarray(t * Vt, (t + 1) * Vt));
    const model = await llama.loadModel({ modelPath: file });
    try {
      const got = await llamaCppLogits(model, ids, undefined, Vt);
      expect(relMaxErr(got, want)).toBeLessThan(1e-4);
    } finally {
      await model.dispose();
    }
  }, 120_000);
});
