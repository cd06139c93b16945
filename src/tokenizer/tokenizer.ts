/**
 * Hugging Face tokenizers: `tokenizer.json` (required) and `tokenizer_config.json` (optional),
 * run by `@huggingface/tokenizers` (pure JS, HF's port of the Rust library) behind the small
 * `MftTokenizer` interface the rest of mft uses. A folder holding only tokenizer files is enough.
 *
 * Behaviour follows the Rust `tokenizers` library (checked against it in the tests), with
 * transformers' reading of `tokenizer_config.json` on top:
 *   - `bos_token` / `eos_token` / `pad_token` name the special ids (strings or AddedToken objects);
 *     when tokenizer_config.json has no `bos_token` / `eos_token` key, `config.json`'s
 *     `bos_token_id` / `eos_token_id` are used if that file is there;
 *   - `add_bos_token` / `add_eos_token`, when present, decide whether `encode` adds them (as
 *     transformers' LlamaTokenizerFast rebuilds its post-processor from these flags);
 *   - `chat_template` (or a `chat_template.jinja` file) is exposed as text.
 * `decode` is the exact inverse of the tokenizer's decoder: transformers'
 * `clean_up_tokenization_spaces` (which rewrites " ." to "." and similar) is never applied, so
 * decoded code and completions keep their spacing.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { fail } from '../util/index.js';

/** The tokenizer as mft uses it (contract shared by data, model, eval and the CLI). */
export interface MftTokenizer {
  /** Token ids of `text`; `addSpecialTokens` (default true) adds what the tokenizer adds (BOS for Llama). */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; `skipSpecialTokens` (default false) drops special tokens such as BOS/EOS. */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** Number of ids: the largest id (vocabulary and added tokens) + 1. */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  /** Whether `encode` (with special tokens) puts BOS first. */
  readonly addsBos: boolean;
  /** Whether `encode` (with special tokens) puts EOS last. */
  readonly addsEos: boolean;
  /** The Jinja chat template of tokenizer_config.json, or null. */
  readonly chatTemplate: string | null;
  /** Id of a token string (vocabulary or added token), or null. */
  tokenToId(token: string): number | null;
  /** The folder the tokenizer was loaded from (absolute). */
  readonly dir: string;
}

/** The files a Hugging Face tokenizer folder may hold (only tokenizer.json is required). */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
] as const;

type Json = Record<string, unknown>;

/**
 * Load the tokenizer of a model folder.
 * @param dir folder with `tokenizer.json` (and optionally `tokenizer_config.json`)
 * @example
 *   const tok = await loadTokenizer('checkpoints/base/tinystories-260k');
 *   tok.encode('Once upon a time'); // [1, 403, 407, 261, 378]
 */
export async function loadTokenizer(dir: string): Promise<MftTokenizer> {
  const abs = resolve(dir);
  const jsonPath = join(abs, 'tokenizer.json');
  if (!existsSync(abs))
    fail(abs, 'model folder does not exist', 'check the path given as --model / base_model');
  if (!existsSync(jsonPath)) {
    fail(
      abs,
      'no tokenizer.json in this folder',
      'use a Hugging Face model folder that has tokenizer.json (a SentencePiece-only model can be converted with `mft convert llama2c`)',
    );
  }
  const tokenizerJson = await readJson(jsonPath);
  const configPath = join(abs, 'tokenizer_config.json');
  const config = existsSync(configPath) ? await readJson(configPath) : {};
  const modelConfigPath = join(abs, 'config.json');
  const modelConfig = existsSync(modelConfigPath) ? await readJson(modelConfigPath) : {};
  const templatePath = join(abs, 'chat_template.jinja');
  const templateFile = existsSync(templatePath) ? await readFile(templatePath, 'utf8') : null;
  return hfTokenizer(abs, tokenizerJson, config, modelConfig, templateFile);
}

async function readJson(path: string): Promise<Json> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return fail(path, `cannot read: ${(e as Error).message}`);
  }
  try {
    const v: unknown = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(path, 'expected a JSON object');
    return v as Json;
  } catch (e) {
    return fail(
      path,
      `not valid JSON: ${(e as Error).message}`,
      'restore the file from the model repository',
    );
  }
}

/** The tokenizer of a folder's files (already read), as an `MftTokenizer`. */
function hfTokenizer(
  dir: string,
  tokenizerJson: Json,
  config: Json,
  modelConfig: Json,
  templateFile: string | null,
): MftTokenizer {
  let tok: Tokenizer;
  try {
    // The library's own clean-up default is true; mft never applies it (see the file header).
    tok = new Tokenizer(tokenizerJson, { ...config, clean_up_tokenization_spaces: false });
  } catch (e) {
    fail(join(dir, 'tokenizer.json'), `cannot build the tokenizer: ${(e as Error).message}`);
  }
  fixDigits(tok.pre_tokenizer);
  fixByteFallback(tok.decoder);

  let maxId = -1;
  for (const id of tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
  const vocabSize = maxId + 1;

  /** Id of tokenizer_config's `key` token; when the key is absent, config.json's `idKey`. */
  const specialId = (key: string, fromModel: Json, idKey: string): number | null => {
    if (key in config) {
      const v = config[key];
      const content =
        typeof v === 'string' ? v : v && typeof v === 'object' ? (v as Json)['content'] : undefined;
      if (typeof content !== 'string') return null;
      const id = tok.token_to_id(content);
      if (id === undefined) {
        fail(
          join(dir, 'tokenizer_config.json'),
          `${key} "${content}" is not a token of tokenizer.json`,
          'fix the token name or remove the key',
        );
      }
      return id;
    }
    const v = fromModel[idKey];
    const id = Array.isArray(v) ? v[0] : v;
    return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= vocabSize - 1 ? id : null;
  };
  const bosId = specialId('bos_token', modelConfig, 'bos_token_id');
  const eosId = specialId('eos_token', modelConfig, 'eos_token_id');
  const padId = specialId('pad_token', {}, '');

  // What the post-processor adds around a sequence: encode a probe both ways.
  const bare = tok.encode('a', { add_special_tokens: false }).ids;
  const full = tok.encode('a', { add_special_tokens: true }).ids;
  const postAddsBos = bosId !== null && full.length > bare.length && full[0] === bosId;
  const postAddsEos = eosId !== null && full.length > bare.length && full[full.length - 1] === eosId;
  const addsBos = bosId !== null && flag(config, 'add_bos_token', postAddsBos);
  const addsEos = eosId !== null && flag(config, 'add_eos_token', postAddsEos);

  return {
    dir,
    vocabSize,
    bosId,
    eosId,
    padId,
    addsBos,
    addsEos,
    chatTemplate: chatTemplateOf(config, templateFile),

    encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
      const special = opts.addSpecialTokens ?? true;
      const ids = tok.encode(text, { add_special_tokens: special }).ids;
      if (!special) return ids;
      // tokenizer_config's add_bos_token / add_eos_token override the post-processor.
      if (addsBos && !postAddsBos) ids.unshift(bosId!);
      if (!addsBos && postAddsBos) ids.shift();
      if (addsEos && !postAddsEos) ids.push(eosId!);
      if (!addsEos && postAddsEos) ids.pop();
      return ids;
    },

    decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
      // Ids outside the vocabulary (a model's padded embedding rows) decode to nothing, as in
      // the Rust library.
      const known = ids.filter((id) => Number.isInteger(id) && tok.id_to_token(id) !== undefined);
      if (known.length === 0) return '';
      return tok.decode(known, {
        skip_special_tokens: opts.skipSpecialTokens ?? false,
        clean_up_tokenization_spaces: false,
      });
    },

    tokenToId(token: string): number | null {
      return tok.token_to_id(token) ?? null;
    },
  };
}

function flag(config: Json, key: string, fallback: boolean): boolean {
  const v = config[key];
  return typeof v === 'boolean' ? v : fallback;
}

function chatTemplateOf(config: Json, templateFile: string | null): string | null {
  const t = config['chat_template'];
  if (typeof t === 'string') return t;
  // Older multi-template form: [{name, template}], the one named "default" is used.
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const pick = named.find((x) => x.name === 'default') ?? named[0];
    if (pick && typeof pick.template === 'string') return pick.template;
  }
  return templateFile;
}

/** A callable component of the library, seen through the fields the fixes below touch. */
interface Component {
  config?: { type?: unknown; individual_digits?: unknown };
  pattern?: unknown;
  tokenizers?: unknown;
  decoders?: unknown;
  text_decoder?: unknown;
}

/** The library's components are callable objects: typeof is 'function'. */
function asComponent(node: unknown): Component | null {
  return node !== null && (typeof node === 'object' || typeof node === 'function')
    ? (node as Component)
    : null;
}

/**
 * The Rust `ByteFallback` decoder turns a run of <0xNN> tokens into text with
 * `String::from_utf8`: a BOM stays, and a run that is not valid UTF-8 becomes one U+FFFD per
 * byte. The JS port's TextDecoder strips a leading BOM and replaces per maximal subpart; give
 * it the Rust behaviour (a generation cut inside a multi-byte character hits this).
 */
function fixByteFallback(node: unknown): void {
  const n = asComponent(node);
  if (!n) return;
  if (n.config?.type === 'ByteFallback' && n.text_decoder) {
    const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    n.text_decoder = {
      decode(bytes: Uint8Array): string {
        try {
          return strict.decode(bytes);
        } catch {
          return '\uFFFD'.repeat(bytes.length);
        }
      },
    };
  }
  if (Array.isArray(n.decoders)) for (const d of n.decoders) fixByteFallback(d);
}

/**
 * The Rust library's `Digits` pre-tokenizer splits on `char::is_numeric` (Unicode categories
 * Nd, Nl, No: '²', '①', '٣'); the JS port uses `\d`, which is ASCII only in a `u` regex.
 * Replace the pattern so both split the same text the same way.
 */
function fixDigits(node: unknown): void {
  const n = asComponent(node);
  if (!n) return;
  if (n.config?.type === 'Digits' && n.pattern instanceof RegExp) {
    n.pattern = new RegExp(`[^\\p{N}]+|\\p{N}${n.config.individual_digits ? '' : '+'}`, 'gu');
  }
  if (Array.isArray(n.tokenizers)) for (const t of n.tokenizers) fixDigits(t);
}
