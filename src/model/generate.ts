/**
 * Autoregressive generation with a KV cache: the prompt goes through the model once (prefill), then
 * each new token is one step of length 1 that attends to the cached keys/values; the sampler picks
 * the next id from the last position's logits. Stops after `maxNewTokens` or at an end-of-sequence
 * id (not included in the result): any `eos_token_id` of config.json or generation_config.json, or
 * the tokenizer's EOS.
 */
import * as tf from '@tensorflow/tfjs';
import type { MftTokenizer } from '../tokenizer/tokenizer.js';
import { MftError, Rng } from '../util/index.js';
import type { AttentionContext } from './attention.js';
import { frozenRows } from './forward.js';
import { OutputHead } from './head.js';
import { KvCache } from './kv-cache.js';
import type { ModelLora } from './linear.js';
import type { LoadedModel } from './loaded-model.js';
import { type RunLayersOptions, runLayers } from './run-layers.js';
import { applyRepetitionPenalty, sampleToken } from './sampling.js';
import { type WeightProvider, weightsFor } from './weight-provider.js';

export interface GenerateOptions {
  /** Most tokens to generate. */
  /** Told when generation stops at max_position_embeddings before maxNewTokens. */
  onContextEnd?: (maxPositions: number) => void;
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = off. */
  topP: number;
  /** Seed of the sampler. */
  seed: number;
  /** Adapters to apply. */
  lora?: ModelLora;
  /** Called with each generated id as soon as it is chosen (streaming); returning true stops. */
  onToken?(id: number): unknown;
  /** More ids that end generation (a chat template's end-of-turn), beside the model's EOS. */
  stopIds?: readonly number[];
  /** CTRL repetition penalty (> 0; 1 = off) on every id of the prompt and the output so far. */
  repetitionPenalty?: number;
  /**
   * Keep every layer's fp32 weights as tfjs tensors for the whole generation when they fit in this
   * many bytes (default 1 GiB); larger models widen each layer again at every token.
   */
  residentBytes?: number;
}

/**
 * Generate up to `maxNewTokens` ids after `promptIds`.
 * @param tokenizer supplies BOS / EOS ids when config.json does not (may be null)
 * @param promptIds the prompt; empty = start from BOS
 * @returns the generated ids only (without the prompt and without the final EOS)
 * @example
 *   const ids = await generate(model, tok, tok.encode('Once upon a time'), { maxNewTokens: 64, temperature: 0, topP: 1, seed: 0 });
 */
export async function generate(
  model: LoadedModel,
  tokenizer: MftTokenizer | null,
  promptIds: number[],
  opts: GenerateOptions,
): Promise<number[]> {
  const spec = model.spec;
  const eos = new Set<number>(model.stopTokenIds);
  if (tokenizer?.eosId != null) eos.add(tokenizer.eosId);
  for (const id of opts.stopIds ?? []) eos.add(id);
  let prompt = promptIds;
  if (prompt.length === 0) {
    const bos = spec.bos_token_id ?? tokenizer?.bosId ?? null;
    if (bos === null) {
      throw new MftError({
        where: model.dir,
        message: 'no prompt and no BOS token id to start from',
        fix: 'give a prompt, or set bos_token_id in config.json',
      });
    }
    prompt = [bos];
  }
  const rng = new Rng(opts.seed);
  const cache = new KvCache(spec);
  const head = new OutputHead(model);
  const weights = weightsFor(model, opts.residentBytes);
  const out: number[] = [];
  try {
    const maxPos = spec.max_position_embeddings;
    if (prompt.length > maxPos) {
      throw new MftError({
        where: '--prompt',
        message: `is ${prompt.length} tokens, more than the model's max_position_embeddings (${maxPos})`,
        fix: `shorten the prompt to under ${maxPos} tokens`,
      });
    }
    let input = prompt;
    while (out.length < opts.maxNewTokens) {
      // positions past max_position_embeddings were never trained: the model's output there is noise
      if (prompt.length + out.length >= maxPos) {
        opts.onContextEnd?.(maxPos);
        break;
      }
      const logits = await step(model, weights, head, cache, input, opts.lora);
      if (opts.repetitionPenalty !== undefined && opts.repetitionPenalty !== 1) {
        applyRepetitionPenalty(logits, [...prompt, ...out], opts.repetitionPenalty);
      }
      const id = sampleToken(logits, opts, rng);
      if (eos.has(id)) break;
      out.push(id);
      if (opts.onToken?.(id) === true) break;
      input = [id];
    }
    return out;
  } finally {
    cache.dispose();
    head.dispose();
    weights.dispose();
  }
}

/** Feed `ids` at the next positions; returns the logits `[vocab]` of the last one. */
async function step(
  model: LoadedModel,
  weights: WeightProvider,
  head: OutputHead,
  cache: KvCache,
  ids: number[],
  lora?: ModelLora,
): Promise<Float32Array> {
  const ctx = cache.step(ids.length);
  return lastLogits(model, weights, head, ctx, ids, lora);
}

/**
 * One pass of `ctx.batchSize` rows of `ctx.seqLen` tokens through the stack and the head; returns
 * each row's last-position logits, row-major `[B, vocab]`. Disposes `ctx`.
 * @param ids `[B * T]` row-major
 * @param lora adapters per layer (the same for every row, or per row)
 */
export async function lastLogits(
  model: LoadedModel,
  weights: WeightProvider,
  head: OutputHead,
  ctx: AttentionContext,
  ids: readonly number[],
  lora?: RunLayersOptions['lora'],
): Promise<Float32Array> {
  const spec = model.spec;
  const { batchSize: B, seqLen: T } = ctx;
  const Hd = spec.hidden_size;
  let h: tf.Tensor3D;
  try {
    const x = tf.tensor3d(frozenRows(model.embed_tokens, ids), [B, T, Hd]); // [B, T, hidden]
    h = runLayers(model, x, ctx, { weights, lora }); // [B, T, hidden]
  } finally {
    ctx.dispose();
  }
  try {
    return await head.lastLogits(h); // [B, vocab]
  } finally {
    h.dispose();
  }
}
