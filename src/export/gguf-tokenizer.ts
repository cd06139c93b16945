/**
 * The `tokenizer.ggml.*` metadata llama.cpp reads, from a Hugging Face tokenizer folder, as
 * llama.cpp's convert_hf_to_gguf.py writes it:
 *
 * - SentencePiece-style vocabularies (Llama 1/2, Mistral, TinyLlama: '▁' for spaces, byte
 *   fallback) become `tokenizer.ggml.model = "llama"`: tokens, scores and token types. The
 *   scores come from tokenizer.model when the folder has it (the SentencePiece scores themselves);
 *   from tokenizer.json alone, a token's score is minus the rank of the first BPE merge that makes it,
 *   so llama.cpp's highest-score-first merging applies the merges in BPE's order.
 * - Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2) become `tokenizer.ggml.model = "gpt2"` with
 *   the merges and the pre-tokenizer's name (`tokenizer.ggml.pre`), told by its split regex.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSentencePieceModel } from '../convert/sentencepiece.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { fail } from '../util/index.js';
import type { GgufValue } from './gguf-writer.js';

/** llama.cpp `llama_token_type` values. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, user_defined: 4, unused: 5, byte: 6 } as const;

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}
interface TokenizerJson {
  added_tokens?: AddedToken[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  model?: {
    type?: string;
    vocab?: Record<string, number>;
    merges?: (string | [string, string])[];
    byte_fallback?: boolean;
    unk_token?: string | null;
  };
}

/** Byte-level pre-tokenizers llama.cpp knows, told by a part of their split regex. */
const PRE_TOKENIZERS: [name: string, regexPart: string][] = [
  ['llama-bpe', String.raw`[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|`],
  ['qwen2', String.raw`[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|`],
];

function* walk(node: unknown): Generator<Record<string, unknown>> {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const n of node) yield* walk(n);
    return;
  }
  const obj = node as Record<string, unknown>;
  yield obj;
  for (const v of Object.values(obj)) yield* walk(v);
}

/** The `tokenizer.ggml.pre` name of a byte-level BPE tokenizer.json, or null when not known. */
function preTokenizerName(json: TokenizerJson): string | null {
  const regexes: string[] = [];
  for (const n of walk(json.pre_tokenizer)) {
    const pattern = n.pattern as { Regex?: string } | undefined;
    if (n.type === 'Split' && typeof pattern?.Regex === 'string') regexes.push(pattern.Regex);
  }
  if (regexes.length === 0) {
    // GPT-2: a ByteLevel pre-tokenizer with its built-in regex.
    return [...walk(json.pre_tokenizer)].some((n) => n.type === 'ByteLevel') ? 'gpt-2' : null;
  }
  for (const [name, part] of PRE_TOKENIZERS) if (regexes.some((r) => r.includes(part))) return name;
  return null;
}

const mergeText = (m: string | [string, string]): [string, string] => {
  if (Array.isArray(m)) return m;
  const i = m.indexOf(' ', 1);
  return [m.slice(0, i), m.slice(i + 1)];
};

/**
 * The tokenizer metadata of the model folder `dir` for a vocabulary of `vocabSize` ids
 * (config.json's; ids past the tokenizer's are padded as unused `[PAD<i>]` tokens).
 */
export async function ggufTokenizerMetadata(dir: string, vocabSize: number): Promise<Map<string, GgufValue>> {
  const jsonPath = join(dir, 'tokenizer.json');
  if (!existsSync(jsonPath)) {
    fail(
      dir,
      'no tokenizer.json: GGUF files carry the tokenizer',
      'add the tokenizer files of the base model',
    );
  }
  const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as TokenizerJson;
  const tok = await loadTokenizer(dir);
  const model = json.model ?? {};
  const vocab = model.vocab ?? {};
  if (model.type !== 'BPE') {
    fail(
      jsonPath,
      `a ${model.type ?? 'missing'} tokenizer model cannot be exported to GGUF yet`,
      'use a BPE tokenizer',
    );
  }
  const tokens: (string | null)[] = new Array(vocabSize).fill(null);
  const types = new Int32Array(vocabSize).fill(TOKEN_TYPE.normal);
  const put = (text: string, id: number, where: string): void => {
    if (id < 0 || id >= vocabSize) {
      fail(where, `token ${JSON.stringify(text)} has id ${id}, past config.json's vocab_size ${vocabSize}`);
    }
    tokens[id] = text;
  };
  for (const [text, id] of Object.entries(vocab)) put(text, id, jsonPath);
  for (const a of json.added_tokens ?? []) {
    put(a.content, a.id, jsonPath);
    types[a.id] = a.special === false ? TOKEN_TYPE.user_defined : TOKEN_TYPE.control;
  }
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === null) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.unused;
    }
  }
  const unkId = model.unk_token ? (vocab[model.unk_token] ?? null) : null;
  if (unkId !== null) types[unkId] = TOKEN_TYPE.unknown;

  const meta = new Map<string, GgufValue>();
  const merges = (model.merges ?? []).map(mergeText);
  const byteLevel = [...walk(json.pre_tokenizer)].some((n) => n.type === 'ByteLevel');
  if (byteLevel) {
    const pre = preTokenizerName(json);
    if (pre === null) {
      fail(
        jsonPath,
        'its byte-level pre-tokenizer is not one llama.cpp names (GPT-2, Llama 3, Qwen2)',
        'export a model with one of these tokenizers',
      );
    }
    meta.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
    meta.set('tokenizer.ggml.pre', { type: 'string', value: pre });
    meta.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens as string[] });
    meta.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
    meta.set('tokenizer.ggml.merges', { type: 'string[]', value: merges.map(([a, b]) => `${a} ${b}`) });
  } else {
    const scores = new Float32Array(vocabSize);
    const spPath = join(dir, 'tokenizer.model');
    const sp = existsSync(spPath) ? parseSentencePieceModel(readFileSync(spPath), spPath) : null;
    if (sp && sp.pieces.length <= vocabSize) {
      for (const [i, p] of sp.pieces.entries()) scores[i] = p.score;
    } else {
      // Lowest priority for tokens no merge makes; a merged token scores minus its merge's rank.
      scores.fill(-(merges.length + 1));
      for (const [rank, [a, b]] of merges.entries()) {
        const id = vocab[a + b];
        if (id !== undefined && (scores[id] as number) < -rank) scores[id] = -rank;
      }
    }
    if (model.byte_fallback) {
      for (let i = 0; i < vocabSize; i++) {
        if (/^<0x[0-9A-F]{2}>$/.test(tokens[i] as string) && types[i] === TOKEN_TYPE.normal)
          types[i] = TOKEN_TYPE.byte;
      }
    }
    // Metaspace's prepend_scheme (or a Prepend('▁') normalizer): whether a leading '▁' is added.
    let addSpacePrefix = false;
    for (const n of [...walk(json.pre_tokenizer), ...walk(json.normalizer)]) {
      if (n.type === 'Metaspace')
        addSpacePrefix = n.prepend_scheme !== 'never' && n.add_prefix_space !== false;
      if (n.type === 'Prepend' && n.prepend === '▁') addSpacePrefix = true;
    }
    meta.set('tokenizer.ggml.model', { type: 'string', value: 'llama' });
    meta.set('tokenizer.ggml.pre', { type: 'string', value: 'default' });
    meta.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens as string[] });
    meta.set('tokenizer.ggml.scores', { type: 'f32[]', value: scores });
    meta.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
    meta.set('tokenizer.ggml.add_space_prefix', { type: 'bool', value: addSpacePrefix });
  }
  if (tok.bosId !== null) meta.set('tokenizer.ggml.bos_token_id', { type: 'u32', value: tok.bosId });
  if (tok.eosId !== null) meta.set('tokenizer.ggml.eos_token_id', { type: 'u32', value: tok.eosId });
  if (unkId !== null) meta.set('tokenizer.ggml.unknown_token_id', { type: 'u32', value: unkId });
  if (tok.padId !== null) meta.set('tokenizer.ggml.padding_token_id', { type: 'u32', value: tok.padId });
  meta.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: tok.addsBos });
  meta.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: tok.addsEos });
  if (tok.chatTemplate !== null)
    meta.set('tokenizer.chat_template', { type: 'string', value: tok.chatTemplate });
  return meta;
}
