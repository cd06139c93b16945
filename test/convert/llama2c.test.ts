import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { convertLlama2c, permuteRotaryRows, readLlama2cCheckpoint } from '../../src/convert/llama2c.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { MftError, Rng } from '../../src/util/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

const STORIES = 'test/fixtures/stories260K';

const tempDir = () => makeTempDir('l2c');
afterAll(removeTempDirs);

function randn(rng: Rng, n: number): Float64Array {
  return Float64Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** y = W x for row-major W [rows, cols]. */
function matVec(w: ArrayLike<number>, x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

// Meta / llama2.c RoPE: rotate the pairs (2i, 2i+1) of each head by pos * theta^(-2i/hd).
function ropeInterleaved(v: Float64Array, headDim: number, pos: number): Float64Array {
  const out = new Float64Array(v.length);
  for (let h = 0; h < v.length / headDim; h++) {
    for (let i = 0; i < headDim / 2; i++) {
      const a = pos * 10000 ** ((-2 * i) / headDim);
      const x0 = v[h * headDim + 2 * i]!;
      const x1 = v[h * headDim + 2 * i + 1]!;
      out[h * headDim + 2 * i] = x0 * Math.cos(a) - x1 * Math.sin(a);
      out[h * headDim + 2 * i + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
  }
  return out;
}

// HF RoPE (rotate_half): rotate the pairs (i, i + hd/2) of each head by the same angles.
function ropeHalves(v: Float64Array, headDim: number, pos: number): Float64Array {
  const out = new Float64Array(v.length);
  const half = headDim / 2;
  for (let h = 0; h < v.length / headDim; h++) {
    for (let i = 0; i < half; i++) {
      const a = pos * 10000 ** ((-2 * i) / headDim);
      const x0 = v[h * headDim + i]!;
      const x1 = v[h * headDim + i + half]!;
      out[h * headDim + i] = x0 * Math.cos(a) - x1 * Math.sin(a);
      out[h * headDim + i + half] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
  }
  return out;
}

describe('permuteRotaryRows', () => {
  test('one head of 4 rows: [r0, r1, r2, r3] -> [r0, r2, r1, r3]', () => {
    const w = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]);
    expect(Array.from(permuteRotaryRows(w, 1, 2))).toEqual([0, 0, 2, 2, 1, 1, 3, 3]);
  });

  test('HF rotate_half on permuted q/k gives the same attention scores as Meta RoPE on the originals', () => {
    const rng = new Rng(7);
    const heads = 3;
    const headDim = 8;
    const cols = 5;
    const rows = heads * headDim;
    const wq = Float32Array.from(randn(rng, rows * cols));
    const wk = Float32Array.from(randn(rng, rows * cols));
    const wqHf = permuteRotaryRows(wq, heads, cols);
    const wkHf = permuteRotaryRows(wk, heads, cols);
    const x = randn(rng, cols);
    const y = randn(rng, cols);
    for (const [pq, pk] of [
      [0, 0],
      [5, 2],
      [17, 9],
    ] as const) {
      const qm = ropeInterleaved(matVec(wq, x, rows, cols), headDim, pq);
      const km = ropeInterleaved(matVec(wk, y, rows, cols), headDim, pk);
      const qh = ropeHalves(matVec(wqHf, x, rows, cols), headDim, pq);
      const kh = ropeHalves(matVec(wkHf, y, rows, cols), headDim, pk);
      for (let h = 0; h < heads; h++) {
        let sm = 0;
        let sh = 0;
        for (let d = 0; d < headDim; d++) {
          sm += qm[h * headDim + d]! * km[h * headDim + d]!;
          sh += qh[h * headDim + d]! * kh[h * headDim + d]!;
        }
        expect(Math.abs(sm - sh)).toBeLessThan(1e-5);
      }
    }
  });
});

/** A legacy llama2.c file whose float at index i (after the header) is i, so every slice is traceable. */
function syntheticCheckpoint(header: number[], floats: number): string {
  const buf = Buffer.alloc(28 + 4 * floats);
  header.forEach((v, i) => {
    buf.writeInt32LE(v, 4 * i);
  });
  for (let i = 0; i < floats; i++) buf.writeFloatLE(i, 28 + 4 * i);
  const path = join(tempDir(), 'model.bin');
  writeFileSync(path, buf);
  return path;
}

describe('readLlama2cCheckpoint', () => {
  // dim 8, hidden 12, 2 layers, 2 heads, 1 kv head (head 4, kv_dim 4), vocab 6 unshared, seq_len 3
  const [dim, hidden, layers, heads, kvHeads, vocab, seqLen] = [8, 12, 2, 2, 1, 6, 3];
  const kvDim = 4;
  const sizes = {
    embed: vocab * dim,
    rmsAtt: layers * dim,
    wq: layers * dim * dim,
    wk: layers * kvDim * dim,
    wv: layers * kvDim * dim,
    wo: layers * dim * dim,
    rmsFfn: layers * dim,
    w1: layers * hidden * dim,
    w2: layers * dim * hidden,
    w3: layers * hidden * dim,
    rmsFinal: dim,
    freqs: seqLen * (dim / heads),
    wcls: vocab * dim,
  };
  const starts: Record<string, number> = {};
  let total = 0;
  for (const [k, n] of Object.entries(sizes)) {
    starts[k] = total;
    total += n;
  }
  const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

  test('every tensor lands under its HF name, shape and values (q/k permuted, unshared lm_head)', () => {
    const path = syntheticCheckpoint([dim, hidden, layers, heads, kvHeads, -vocab, seqLen], total);
    const { config, tensors } = readLlama2cCheckpoint(path);
    expect(config).toEqual({
      dim,
      hidden_dim: hidden,
      n_layers: layers,
      n_heads: heads,
      n_kv_heads: kvHeads,
      vocab_size: vocab,
      seq_len: seqLen,
      sharedClassifier: false,
    });
    const byName = new Map(tensors.map((t) => [t.name, t]));
    expect(tensors.length).toBe(1 + 9 * layers + 2);
    const get = (n: string) => {
      const t = byName.get(n);
      if (!t) throw new Error(`missing ${n}`);
      return t;
    };
    expect(get('model.embed_tokens.weight').shape).toEqual([vocab, dim]);
    expect(Array.from(get('model.embed_tokens.weight').data)).toEqual(range(0, sizes.embed));
    // Layer 1 slices start one layer's worth into each field.
    expect(Array.from(get('model.layers.1.input_layernorm.weight').data)).toEqual(
      range(starts.rmsAtt! + dim, dim),
    );
    expect(get('model.layers.1.self_attn.v_proj.weight').shape).toEqual([kvDim, dim]);
    expect(Array.from(get('model.layers.1.self_attn.v_proj.weight').data)).toEqual(
      range(starts.wv! + kvDim * dim, kvDim * dim),
    );
    expect(Array.from(get('model.layers.0.mlp.down_proj.weight').data)).toEqual(
      range(starts.w2!, dim * hidden),
    );
    expect(get('model.layers.0.mlp.down_proj.weight').shape).toEqual([dim, hidden]);
    expect(Array.from(get('model.layers.1.mlp.up_proj.weight').data)).toEqual(
      range(starts.w3! + hidden * dim, hidden * dim),
    );
    expect(Array.from(get('model.layers.0.mlp.gate_proj.weight').data)).toEqual(
      range(starts.w1!, hidden * dim),
    );
    expect(Array.from(get('model.layers.0.post_attention_layernorm.weight').data)).toEqual(
      range(starts.rmsFfn!, dim),
    );
    expect(Array.from(get('model.norm.weight').data)).toEqual(range(starts.rmsFinal!, dim));
    expect(Array.from(get('lm_head.weight').data)).toEqual(range(starts.wcls!, sizes.wcls));
    // k of layer 0: one kv head of 4 rows, rows reordered [0, 2, 1, 3]
    const k = get('model.layers.0.self_attn.k_proj.weight');
    expect(k.shape).toEqual([kvDim, dim]);
    const row = (r: number) => range(starts.wk! + r * dim, dim);
    expect(Array.from(k.data)).toEqual([...row(0), ...row(2), ...row(1), ...row(3)]);
    // q of layer 1: two heads of 4 rows
    const q = get('model.layers.1.self_attn.q_proj.weight');
    const qrow = (r: number) => range(starts.wq! + dim * dim + r * dim, dim);
    expect(Array.from(q.data)).toEqual([0, 2, 1, 3, 4, 6, 5, 7].flatMap(qrow));
  });

  test('a shared classifier has no lm_head', () => {
    const path = syntheticCheckpoint(
      [dim, hidden, layers, heads, kvHeads, vocab, seqLen],
      total - sizes.wcls,
    );
    const { config, tensors } = readLlama2cCheckpoint(path);
    expect(config.sharedClassifier).toBe(true);
    expect(tensors.some((t) => t.name === 'lm_head.weight')).toBe(false);
  });

  test('a truncated file, a v1 export and a bad header are MftErrors naming the file', () => {
    const short = syntheticCheckpoint(
      [dim, hidden, layers, heads, kvHeads, vocab, seqLen],
      total - sizes.wcls - 1,
    );
    expect(() => readLlama2cCheckpoint(short)).toThrow(MftError);
    expect(() => readLlama2cCheckpoint(short)).toThrow(
      /model\.bin: file is \d+ bytes but its header .* implies \d+/,
    );
    const v1 = syntheticCheckpoint([0x616b3432, 1, 64, 0, 0, 0, 0], 10);
    expect(() => readLlama2cCheckpoint(v1)).toThrow(/version 1\/2 export .*export\.py --version 0/);
    const badHeads = syntheticCheckpoint([dim, hidden, layers, 3, 1, vocab, seqLen], 10);
    expect(() => readLlama2cCheckpoint(badHeads)).toThrow(/dim 8 is not n_heads 3 times an even head size/);
    const negative = syntheticCheckpoint([dim, -1, layers, heads, kvHeads, vocab, seqLen], 10);
    expect(() => readLlama2cCheckpoint(negative)).toThrow(/header field hidden_dim is -1/);
    const tiny = join(tempDir(), 'tiny.bin');
    writeFileSync(tiny, Buffer.alloc(5));
    expect(() => readLlama2cCheckpoint(tiny)).toThrow(/too small for a llama2\.c checkpoint/);
  });
});

// ---------------------------------------------------------------------------------------------
// The converted stories260K, run by an independent float64 forward pass written here (HF
// conventions: rotate_half RoPE, GQA, RMSNorm eps 1e-5, SwiGLU, tied lm_head), must reproduce
// the greedy ids of the original C implementation (run.c).

/** Minimal safetensors reader for the test: F32 tensors only. */
function readF32Safetensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    expect(t.dtype).toBe('F32');
    const [b, e] = t.data_offsets;
    const data = new Float32Array(
      bytes.buffer.slice(bytes.byteOffset + 8 + n + b, bytes.byteOffset + 8 + n + e),
    );
    out.set(name, { shape: t.shape, data });
  }
  return out;
}

function greedyReference(dir: string, steps: number): number[] {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  const w = readF32Safetensors(join(dir, 'model.safetensors'));
  const W = (n: string) => w.get(n)!.data;
  const dim = cfg.hidden_size!;
  const hidden = cfg.intermediate_size!;
  const heads = cfg.num_attention_heads!;
  const kvHeads = cfg.num_key_value_heads!;
  const hd = dim / heads;
  const kvDim = kvHeads * hd;
  const L = cfg.num_hidden_layers!;
  const V = cfg.vocab_size!;
  const rms = (x: Float64Array, g: Float32Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const s = 1 / Math.sqrt(ss / x.length + 1e-5);
    return x.map((v, i) => v * s * g[i]!);
  };
  const kCache: Float64Array[][] = Array.from({ length: L }, () => []);
  const vCache: Float64Array[][] = Array.from({ length: L }, () => []);
  const out: number[] = [];
  let token = 1; // BOS
  for (let pos = 0; pos < steps; pos++) {
    const x = Float64Array.from(W('model.embed_tokens.weight').subarray(token * dim, (token + 1) * dim));
    for (let l = 0; l < L; l++) {
      const p = `model.layers.${l}`;
      const h = rms(x, W(`${p}.input_layernorm.weight`));
      const q = ropeHalves(matVec(W(`${p}.self_attn.q_proj.weight`), h, dim, dim), hd, pos);
      const k = ropeHalves(matVec(W(`${p}.self_attn.k_proj.weight`), h, kvDim, dim), hd, pos);
      const v = matVec(W(`${p}.self_attn.v_proj.weight`), h, kvDim, dim);
      kCache[l]!.push(k);
      vCache[l]!.push(v);
      const att = new Float64Array(dim);
      for (let hh = 0; hh < heads; hh++) {
        const kvh = Math.floor(hh / (heads / kvHeads));
        const scores = kCache[l]!.map((kk) => {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[hh * hd + d]! * kk[kvh * hd + d]!;
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t <= pos; t++) {
          for (let d = 0; d < hd; d++) att[hh * hd + d]! += (e[t]! / z) * vCache[l]![t]![kvh * hd + d]!;
        }
      }
      const o = matVec(W(`${p}.self_attn.o_proj.weight`), att, dim, dim);
      for (let i = 0; i < dim; i++) x[i]! += o[i]!;
      const h2 = rms(x, W(`${p}.post_attention_layernorm.weight`));
      const g = matVec(W(`${p}.mlp.gate_proj.weight`), h2, hidden, dim);
      const u = matVec(W(`${p}.mlp.up_proj.weight`), h2, hidden, dim);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
      const d = matVec(W(`${p}.mlp.down_proj.weight`), a, dim, hidden);
      for (let i = 0; i < dim; i++) x[i]! += d[i]!;
    }
    const logits = matVec(W('model.embed_tokens.weight'), rms(x, W('model.norm.weight')), V, dim);
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    out.push(best);
    token = best;
  }
  return out;
}

describe('convertLlama2c on stories260K', () => {
  const expectedIds = readFileSync(join(STORIES, 'greedy_t0_n256_noprompt.ids.txt'), 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);

  test('an independent forward pass over the converted weights reproduces run.c greedy ids and text', async () => {
    const out = tempDir();
    const r = convertLlama2c({
      checkpoint: join(STORIES, 'stories260K.bin'),
      tokenizer: join(STORIES, 'tok512.model'),
      out,
    });
    expect(r.parameters).toBe(260032);
    expect(expectedIds.length).toBe(256);
    expect(greedyReference(out, 256)).toEqual(expectedIds);
    const tok = await loadTokenizer(out);
    const text = readFileSync(join(STORIES, 'greedy_t0_n256_noprompt.txt'), 'utf8');
    // run.c prints a newline after the last token.
    expect(`${tok.decode(expectedIds)}\n`).toBe(text);
  });

  test('config.json, tokenizer_config.json and generation_config.json say what the model is', () => {
    const out = tempDir();
    convertLlama2c({
      checkpoint: join(STORIES, 'stories260K.bin'),
      tokenizer: join(STORIES, 'tok512.model'),
      out,
    });
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      max_position_embeddings: 512,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      vocab_size: 512,
      tie_word_embeddings: true,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'float32',
    });
    expect(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'))).toMatchObject({
      add_bos_token: true,
      add_eos_token: false,
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
    });
    expect(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8'))).toEqual({
      bos_token_id: 1,
      eos_token_id: 2,
    });
    const st = readF32Safetensors(join(out, 'model.safetensors'));
    expect(st.has('lm_head.weight')).toBe(false);
    // safetensors metadata {"format": "pt"}, as PyTorch loaders expect.
    const fd = openSync(join(out, 'model.safetensors'), 'r');
    const head = Buffer.alloc(200);
    readSync(fd, head, 0, 200, 8);
    closeSync(fd);
    expect(head.toString('utf8')).toContain('"__metadata__":{"format":"pt"}');
  });

  test('refuses to overwrite a converted model unless asked; mismatched vocabulary is an error', () => {
    const out = tempDir();
    const args = {
      checkpoint: join(STORIES, 'stories260K.bin'),
      tokenizer: join(STORIES, 'tok512.model'),
      out,
    };
    convertLlama2c(args);
    expect(() => convertLlama2c(args)).toThrow(/config\.json: already exists \(fix: .*--overwrite/);
    expect(() => convertLlama2c({ ...args, overwrite: true })).not.toThrow();
    const other = tempDir();
    expect(() =>
      convertLlama2c({
        ...args,
        tokenizer: 'test/fixtures/tokenizers/mistral-7b-v0.1/tokenizer.model',
        out: other,
      }),
    ).toThrow(/tokenizer has 32000 pieces but the checkpoint's vocabulary is 512/);
    expect(() => convertLlama2c({ ...args, checkpoint: '/nonexistent.bin', out: other })).toThrow(
      /nonexistent\.bin: file not found \(--checkpoint\)/,
    );
  });
});
