/**
 * llama2.c checkpoints -> Hugging Face LlamaForCausalLM folders.
 *
 * Legacy llama2.c format (karpathy/llama2.c `export.py --version 0`, the `run.c` reader):
 *   7 x int32 header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *     (vocab_size < 0 means the classifier is NOT shared with the embedding), then float32:
 *   token_embedding [vocab, dim]
 *   rms_att         [layers, dim]
 *   wq              [layers, dim, dim]          (rows in Meta's interleaved-rotary order)
 *   wk              [layers, kv_dim, dim]       (same)
 *   wv              [layers, kv_dim, dim]
 *   wo              [layers, dim, dim]
 *   rms_ffn         [layers, dim]
 *   w1              [layers, hidden, dim]       (gate_proj)
 *   w2              [layers, dim, hidden]       (down_proj)
 *   w3              [layers, hidden, dim]       (up_proj)
 *   rms_final       [dim]
 *   freq_cis_real, freq_cis_imag [seq_len, head_size / 2] each (unused)
 *   wcls            [vocab, dim]                (only when not shared)
 * Matrices are row-major [out, in], like HF's `nn.Linear.weight`.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail, writeFileAtomic } from '../util/index.js';
import { writeSafetensors } from '../weights/safetensors-writer.js';
import {
  parseSentencePieceModel,
  sentencePieceToTokenizerJson,
  stringifyTokenizerJson,
} from './sentencepiece.js';

/** The header of a legacy llama2.c checkpoint (its own field names). */
export interface Llama2cConfig {
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  /** Always positive here; `sharedClassifier` holds the sign of the file's field. */
  vocab_size: number;
  seq_len: number;
  sharedClassifier: boolean;
}

/** One fp32 tensor under its Hugging Face name, [out, in] for matrices. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

const HEADER_BYTES = 7 * 4;
const AK42_MAGIC = 0x616b3432; // "ak42": llama2.c export versions 1 and 2

/**
 * Rows of a q or k projection from Meta's interleaved rotary order to HF's rotate_half order.
 * Within each head, Meta rotates row pairs (2i, 2i+1); HF rotates (i, i + head_dim/2). As in
 * transformers' convert_llama_weights_to_hf.py:
 *   w.view(n_heads, head_dim/2, 2, in).transpose(1, 2).reshape(n_heads*head_dim, in)
 * i.e. out[h*hd + j*hd/2 + i] = in[h*hd + 2i + j].
 * @param w [nHeads * headDim, cols] row-major
 */
export function permuteRotaryRows(w: Float32Array, nHeads: number, cols: number): Float32Array {
  const rows = w.length / cols;
  const headDim = rows / nHeads;
  if (!Number.isInteger(rows) || !Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new Error(
      `permuteRotaryRows: ${w.length} values with ${cols} columns and ${nHeads} heads do not give an even head_dim`,
    );
  }
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + 2 * i + j) * cols;
        const dst = (h * headDim + j * half + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/**
 * Read a legacy llama2.c checkpoint into HF-named fp32 tensors (q/k rows permuted to HF order).
 * The file size is checked against the header before anything is allocated.
 * @example
 *   const { config, tensors } = readLlama2cCheckpoint('stories260K.bin');
 *   config.dim; // 64
 */
export function readLlama2cCheckpoint(path: string): { config: Llama2cConfig; tensors: NamedTensor[] } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < HEADER_BYTES) fail(path, `file of ${size} bytes is too small for a llama2.c checkpoint`);
    const header = new Int32Array(7);
    readSync(fd, new Uint8Array(header.buffer), 0, HEADER_BYTES, 0);
    if (header[0] === AK42_MAGIC) {
      fail(
        path,
        'this is a llama2.c version 1/2 export (magic "ak42"); only the legacy format is read',
        'export it with llama2.c `export.py --version 0`',
      );
    }
    const [dim, hidden, layers, heads, kvHeads, vocabField, seqLen] = Array.from(header) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const config: Llama2cConfig = {
      dim,
      hidden_dim: hidden,
      n_layers: layers,
      n_heads: heads,
      n_kv_heads: kvHeads,
      vocab_size: Math.abs(vocabField),
      seq_len: seqLen,
      sharedClassifier: vocabField > 0,
    };
    validateHeader(path, config);
    const headDim = dim / heads;
    const kvDim = kvHeads * headDim;
    const vocab = config.vocab_size;

    const expectedFloats =
      vocab * dim +
      layers * (2 * dim + 2 * dim * dim + 2 * kvDim * dim + 3 * hidden * dim) +
      dim +
      seqLen * headDim +
      (config.sharedClassifier ? 0 : vocab * dim);
    const expectedBytes = HEADER_BYTES + 4 * expectedFloats;
    if (size !== expectedBytes) {
      fail(
        path,
        `file is ${size} bytes but its header (dim ${dim}, hidden ${hidden}, ${layers} layers, ${heads} heads, ` +
          `${kvHeads} kv heads, vocab ${vocabField}, seq_len ${seqLen}) implies ${expectedBytes}`,
        'the file is truncated or not a legacy llama2.c checkpoint',
      );
    }

    let offset = HEADER_BYTES;
    const next = (count: number): Float32Array => {
      const out = new Float32Array(count);
      const bytes = new Uint8Array(out.buffer);
      let done = 0;
      while (done < bytes.length) {
        const n = readSync(fd, bytes, done, bytes.length - done, offset + done);
        if (n === 0) fail(path, `unexpected end of file at byte ${offset + done}`);
        done += n;
      }
      offset += bytes.length;
      return out;
    };
    // Each field is stored for all layers at once; split it into per-layer tensors.
    const perLayer = (count: number) => {
      const all = next(layers * count);
      return Array.from({ length: layers }, (_, l) => all.slice(l * count, (l + 1) * count));
    };

    const embed = next(vocab * dim);
    const rmsAtt = perLayer(dim);
    const wq = perLayer(dim * dim);
    const wk = perLayer(kvDim * dim);
    const wv = perLayer(kvDim * dim);
    const wo = perLayer(dim * dim);
    const rmsFfn = perLayer(dim);
    const w1 = perLayer(hidden * dim);
    const w2 = perLayer(dim * hidden);
    const w3 = perLayer(hidden * dim);
    const rmsFinal = next(dim);
    next(seqLen * headDim); // freq_cis_real and freq_cis_imag: RoPE tables, recomputed by the model
    const wcls = config.sharedClassifier ? null : next(vocab * dim);

    const tensors: NamedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [vocab, dim], data: embed }];
    for (let l = 0; l < layers; l++) {
      const p = `model.layers.${l}`;
      tensors.push(
        { name: `${p}.input_layernorm.weight`, shape: [dim], data: rmsAtt[l]! },
        {
          name: `${p}.self_attn.q_proj.weight`,
          shape: [dim, dim],
          data: permuteRotaryRows(wq[l]!, heads, dim),
        },
        {
          name: `${p}.self_attn.k_proj.weight`,
          shape: [kvDim, dim],
          data: permuteRotaryRows(wk[l]!, kvHeads, dim),
        },
        { name: `${p}.self_attn.v_proj.weight`, shape: [kvDim, dim], data: wv[l]! },
        { name: `${p}.self_attn.o_proj.weight`, shape: [dim, dim], data: wo[l]! },
        { name: `${p}.post_attention_layernorm.weight`, shape: [dim], data: rmsFfn[l]! },
        { name: `${p}.mlp.gate_proj.weight`, shape: [hidden, dim], data: w1[l]! },
        { name: `${p}.mlp.down_proj.weight`, shape: [dim, hidden], data: w2[l]! },
        { name: `${p}.mlp.up_proj.weight`, shape: [hidden, dim], data: w3[l]! },
      );
    }
    tensors.push({ name: 'model.norm.weight', shape: [dim], data: rmsFinal });
    if (wcls) tensors.push({ name: 'lm_head.weight', shape: [vocab, dim], data: wcls });
    return { config, tensors };
  } finally {
    closeSync(fd);
  }
}

function validateHeader(path: string, c: Llama2cConfig): void {
  const fields = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
  for (const f of fields) {
    if (!(c[f] > 0))
      fail(
        path,
        `header field ${f} is ${c[f]}, expected a positive number`,
        'pass a legacy llama2.c checkpoint',
      );
  }
  if (c.dim % c.n_heads !== 0 || (c.dim / c.n_heads) % 2 !== 0) {
    fail(
      path,
      `dim ${c.dim} is not n_heads ${c.n_heads} times an even head size`,
      'pass a legacy llama2.c checkpoint',
    );
  }
  if (c.n_heads % c.n_kv_heads !== 0) {
    fail(
      path,
      `n_heads ${c.n_heads} is not a multiple of n_kv_heads ${c.n_kv_heads}`,
      'pass a legacy llama2.c checkpoint',
    );
  }
}

/** The files `convertLlama2c` writes into the output folder. */
export const CONVERTED_FILES = [
  'config.json',
  'generation_config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
] as const;

/**
 * Convert a legacy llama2.c checkpoint and its SentencePiece BPE `tokenizer.model` into a
 * Hugging Face LlamaForCausalLM folder (fp32 safetensors, config.json, tokenizer.json,
 * tokenizer_config.json, generation_config.json). The output is a pure function of the two
 * inputs, so re-running gives byte-identical files.
 * @param opts.overwrite replace model files already in `out` (default: refuse)
 * @example
 *   convertLlama2c({ checkpoint: 'stories260K.bin', tokenizer: 'tok512.model', out: 'tinystories-260k' });
 */
export function convertLlama2c(opts: {
  checkpoint: string;
  tokenizer: string;
  out: string;
  overwrite?: boolean;
}): { config: Llama2cConfig; parameters: number; out: string } {
  const out = resolve(opts.out);
  for (const [flag, p] of [
    ['--checkpoint', opts.checkpoint],
    ['--tokenizer', opts.tokenizer],
  ] as const) {
    if (!existsSync(p)) fail(p, `file not found (${flag})`, 'check the path');
  }
  if (!opts.overwrite) {
    const existing = CONVERTED_FILES.filter((f) => existsSync(join(out, f)));
    if (existing.length > 0) {
      fail(
        join(out, existing[0]!),
        'already exists',
        'choose another --out folder or pass --overwrite to replace the model files there',
      );
    }
  }

  const spm = parseSentencePieceModel(readFileSync(opts.tokenizer), opts.tokenizer);
  const tokenizerJson = sentencePieceToTokenizerJson(spm, opts.tokenizer, { addBos: true, addEos: false });
  const { config: c, tensors } = readLlama2cCheckpoint(opts.checkpoint);
  if (spm.pieces.length !== c.vocab_size) {
    fail(
      opts.tokenizer,
      `tokenizer has ${spm.pieces.length} pieces but the checkpoint's vocabulary is ${c.vocab_size}`,
      'pass the tokenizer.model the checkpoint was trained with',
    );
  }
  const bos = spm.pieces[spm.bosId]!.piece;
  const eos = spm.pieces[spm.eosId]!.piece;
  const unk = spm.pieces[spm.unkId]!.piece;

  // Field names and defaults as transformers' LlamaConfig writes them.
  const modelConfig = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hidden_dim,
    num_hidden_layers: c.n_layers,
    num_attention_heads: c.n_heads,
    num_key_value_heads: c.n_kv_heads,
    head_dim: c.dim / c.n_heads,
    hidden_act: 'silu',
    max_position_embeddings: c.seq_len,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
    vocab_size: c.vocab_size,
    tie_word_embeddings: c.sharedClassifier,
    bos_token_id: spm.bosId,
    eos_token_id: spm.eosId,
    torch_dtype: 'float32',
  };
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const t of tokenizerJson['added_tokens'] as { id: number; content: string; special: boolean }[]) {
    addedTokensDecoder[String(t.id)] = {
      content: t.content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: t.special,
    };
  }
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder,
    bos_token: bos,
    clean_up_tokenization_spaces: false,
    eos_token: eos,
    legacy: false,
    model_max_length: c.seq_len,
    pad_token: null,
    sp_model_kwargs: {},
    spaces_between_special_tokens: false,
    tokenizer_class: 'LlamaTokenizer',
    unk_token: unk,
    use_default_system_prompt: false,
  };
  const generationConfig = { bos_token_id: spm.bosId, eos_token_id: spm.eosId };

  mkdirSync(out, { recursive: true });
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  writeSafetensors(
    join(out, 'model.safetensors'),
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: t.data })),
    { format: 'pt' },
  );
  writeFileAtomic(join(out, 'config.json'), json(modelConfig));
  writeFileAtomic(join(out, 'generation_config.json'), json(generationConfig));
  writeFileAtomic(join(out, 'tokenizer.json'), stringifyTokenizerJson(tokenizerJson));
  writeFileAtomic(join(out, 'tokenizer_config.json'), json(tokenizerConfig));
  const parameters = tensors.reduce((n, t) => n + t.data.length, 0);
  return { config: c, parameters, out };
}
