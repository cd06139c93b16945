/**
 * Held-out loss, perplexity and token accuracy: the model run forward only (no gradients), batch by
 * batch, layer by layer, and the output head run over chunks of the positions that carry loss, so
 * at most `chunkRows x vocab` logits exist at once.
 *
 *   loss            = sum over loss tokens of (logsumexp(z) - z[label])  /  number of loss tokens
 *   perplexity      = exp(loss)
 *   token_accuracy  = #(argmax z == label) / number of loss tokens
 *
 * Sums are accumulated in float64 over the whole evaluation, so the mean is token-weighted across
 * samples of any length, and the result does not depend on how samples are batched or packed.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Batch } from '../model/batch.js';
import {
  createAttentionContext,
  embedTokens,
  type LoadedModel,
  type LossStats,
  type ModelLora,
  OutputHead,
  runLayers,
  weightsFor,
} from '../model/index.js';
import {
  type BatchLimits,
  buildBatch,
  DEFAULT_ATTENTION_BUDGET,
  DEFAULT_TOKEN_BUDGET,
  type EvalSample,
  planBatches,
} from './dynamic-batching.js';

/** What a loss evaluation measured. */
export interface LossMetrics {
  /** Token-weighted mean cross-entropy (nats) over the tokens that carry loss. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Fraction of loss tokens whose argmax prediction is the label. */
  token_accuracy: number;
  /** Tokens that carry loss. */
  tokens: number;
  /** Tokens run through the model (not counting padding). */
  input_tokens: number;
  /** Samples evaluated. */
  samples: number;
  /** Batches run. */
  batches: number;
  /** Wall-clock seconds of the forward passes. */
  seconds: number;
  /** input_tokens / seconds. */
  tokens_per_second: number;
}

/** Options of `evaluateLoss`. */
export interface LossEvalOptions {
  /** Adapters to apply (no dropout). */
  lora?: ModelLora;
  /** Most token slots per batch (default 4096). */
  tokenBudget?: number;
  /** Most attention scores per batch (default 2^26). */
  attentionBudget?: number;
  /** Pack samples into rows of at most this many tokens (document masking) instead of one per row. */
  packLength?: number;
  /** Id of pad tokens (default 0; pads carry no loss and attend only to pads). */
  padId?: number;
  /** Loss positions per output-head chunk (default: about 2^24 logits per chunk). */
  chunkRows?: number;
  /** Keep every layer's fp32 weights as tensors for the whole evaluation when they fit (default 1 GiB). */
  residentBytes?: number;
  /** Called after each batch with (batches done, batches in all). */
  onBatch?(done: number, total: number): void;
  /**
   * Where batches run: default, this thread; workers pass theirs (`parallel` batches at a time).
   * The sums are added in batch order either way.
   */
  scorer?: BatchScorer;
}

/** Sums of one or more batches over their loss tokens. */
export type LossSums = LossStats;

/** Scores batches: this thread's `batchScorer`, or workers. */
export interface BatchScorer {
  /** Batches it runs at the same time. */
  readonly parallel: number;
  score(batch: Batch): Promise<LossSums>;
  dispose(): void;
}

/**
 * Scores batches in this thread: the model forward (with `lora`, no dropout) and the head's sums.
 * Small models keep their widened layers until `dispose`; large ones widen a layer only while it
 * computes (one layer's fp32 weights at a time).
 * @example const s = batchScorer(model, { lora }); const sums = await s.score(batch); s.dispose();
 */
export function batchScorer(
  model: LoadedModel,
  opts: { lora?: ModelLora; chunkRows?: number; residentBytes?: number } = {},
): BatchScorer {
  const head = new OutputHead(model);
  const weights = weightsFor(model, opts.residentBytes);
  return {
    parallel: 1,
    score: async (batch) => {
      const sums: LossSums = { nll: 0, correct: 0, count: 0 };
      const ctx = createAttentionContext(model.spec, batch);
      let h: tf.Tensor3D;
      try {
        h = runLayers(model, embedTokens(model, batch), ctx, { weights, lora: opts.lora }); // [B, T, hidden]
      } finally {
        ctx.dispose();
      }
      try {
        await head.addLossStats(h, batch.labels, sums, opts.chunkRows);
      } finally {
        h.dispose();
      }
      return sums;
    },
    dispose: () => {
      head.dispose();
      weights.dispose();
    },
  };
}

/**
 * Loss, perplexity and token accuracy of `samples`, batched by length under a token budget.
 * @param samples each evaluated on its own (document masking when packed)
 * @param opts lora, tokenBudget (4096), packLength (off), padId (0), chunkRows
 * @example
 *   const m = await evaluateLoss(model, [{ ids, labels: ids }], { lora: state.toModelLora() });
 *   m.loss; m.perplexity; m.token_accuracy;
 */
export async function evaluateLoss(
  model: LoadedModel,
  samples: readonly EvalSample[],
  opts: LossEvalOptions = {},
): Promise<LossMetrics> {
  const limits: BatchLimits = {
    tokenBudget: opts.tokenBudget ?? DEFAULT_TOKEN_BUDGET,
    attentionBudget: opts.attentionBudget ?? DEFAULT_ATTENTION_BUDGET,
    numHeads: model.spec.num_attention_heads,
  };
  const plan = planBatches(samples, limits, opts.packLength);
  const padId = opts.padId ?? 0;
  const sums: LossSums = { nll: 0, correct: 0, count: 0 };
  let inputTokens = 0;

  const started = performance.now();
  const scorer = opts.scorer ?? batchScorer(model, opts);
  try {
    for (let k = 0; k < plan.length; k += scorer.parallel) {
      const group = plan.slice(k, k + scorer.parallel);
      const results = await Promise.all(
        group.map((p) => scorer.score(buildBatch(samples, p.rows, p.seqLen, padId))),
      );
      for (const [j, r] of results.entries()) {
        sums.nll += r.nll;
        sums.correct += r.correct;
        sums.count += r.count;
        inputTokens += group[j]!.tokens;
        opts.onBatch?.(k + j + 1, plan.length);
      }
    }
  } finally {
    if (!opts.scorer) scorer.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  const loss = sums.count > 0 ? sums.nll / sums.count : Number.NaN;
  return {
    loss,
    perplexity: Math.exp(loss),
    token_accuracy: sums.count > 0 ? sums.correct / sums.count : Number.NaN,
    tokens: sums.count,
    input_tokens: inputTokens,
    samples: samples.length,
    batches: plan.length,
    seconds,
    tokens_per_second: seconds > 0 ? inputTokens / seconds : 0,
  };
}
