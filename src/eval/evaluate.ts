/**
 * `evaluate`: one model (base, or base + adapter) on one evaluation split: the loss metrics on
 * every sample, then the recipe's generation-based task metrics on a sample of records.
 *
 *   recipe eval_metrics                 computed
 *   loss, perplexity, token_accuracy    always (one forward pass gives all three)
 *   line_completion                     next-line exact match and edit similarity (code)
 *   exact_match, edit_similarity        of generated completions (completion / alpaca recipes)
 */
import type { EvalMetric, RecipeFormat } from '../config/index.js';
import type { LoadedModel, ModelLora } from '../model/index.js';
import type { EvalData } from './eval-data.js';
import {
  type Continuer,
  type GenerationMetrics,
  pickCompletions,
  pickLines,
  scoreGenerations,
} from './generation-metrics.js';
import type { LazyTokenizer } from './lazy-tokenizer.js';
import { evaluateLoss, type LossEvalOptions, type LossMetrics } from './loss-eval.js';

/** Options of `evaluate`. */
export interface EvaluateOptions {
  /** Adapters to apply (none: the base model). */
  lora?: ModelLora;
  /** The recipe's `eval_metrics` and `format`. */
  metrics: readonly EvalMetric[];
  format: RecipeFormat;
  /** Most prompts for the generation-based metrics (0: none are computed). */
  maxSamples: number;
  /** Most tokens generated per prompt. */
  maxNewTokens: number;
  /** Seed of the prompt draw. */
  seed: number;
  /** Needed by the generation-based metrics. */
  tokenizer: LazyTokenizer;
  /** Batching of the loss pass (token budget, packing, pad id). */
  loss?: Omit<LossEvalOptions, 'lora'>;
  /** Where the generation metrics' continuations run (workers); default this thread. */
  continuer?: Continuer;
  /** Receives notes on metrics that could not be computed. */
  log?: (line: string) => void;
}

/** Everything one evaluation measured. */
export interface EvalReport extends LossMetrics {
  /** Line completion (code_completion recipes). */
  line_completion?: GenerationMetrics;
  /** Exact match / edit similarity of generated completions (completion, alpaca recipes). */
  completion?: GenerationMetrics;
}

/**
 * Evaluate one model on a split.
 * @example
 *   const report = await evaluate(model, data, { metrics: recipe.eval_metrics, format: recipe.format,
 *     maxSamples: 64, maxNewTokens: 128, seed: 0, tokenizer: new LazyTokenizer(modelDir) });
 */
export async function evaluate(
  model: LoadedModel,
  data: EvalData,
  opts: EvaluateOptions,
): Promise<EvalReport> {
  const log = opts.log ?? (() => {});
  const report: EvalReport = await evaluateLoss(model, data.samples, { ...opts.loss, lora: opts.lora });
  const generation = {
    lora: opts.lora,
    maxNewTokens: opts.maxNewTokens,
    ...(opts.continuer ? { continuer: opts.continuer } : {}),
  };
  if (opts.maxSamples <= 0) return report;

  if (opts.metrics.includes('line_completion')) {
    const samples = pickLines(data.records, opts.maxSamples, opts.seed);
    if (samples.length === 0) {
      log(
        'note: line_completion not computed: no record with text of two or more lines (pre-tokenized data has no text)',
      );
    } else {
      const tok = await opts.tokenizer.get('line completion needs the text of the code');
      report.line_completion = await scoreGenerations(model, tok, samples, 'line', generation);
    }
  }

  if (opts.metrics.includes('exact_match') || opts.metrics.includes('edit_similarity')) {
    if (opts.format !== 'completion' && opts.format !== 'alpaca') {
      log(
        `note: exact_match not computed: it needs a prompt / completion recipe, this one is ${opts.format}`,
      );
    } else {
      const samples = pickCompletions(data.records, opts.maxSamples, opts.seed);
      if (samples.length === 0) {
        log('note: exact_match not computed: no text records (pre-tokenized data has no prompt)');
      } else {
        const tok = await opts.tokenizer.get('exact match needs the prompt text');
        report.completion = await scoreGenerations(model, tok, samples, 'completion', generation);
      }
    }
  }
  return report;
}
