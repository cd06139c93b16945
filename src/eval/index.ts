/**
 * The eval stage: held-out loss, perplexity and token accuracy with dynamic batching, and task
 * metrics from the recipe (line completion for code, exact match for completions).
 */
export {
  type BatchLimits,
  buildBatch,
  DEFAULT_ATTENTION_BUDGET,
  DEFAULT_TOKEN_BUDGET,
  type EvalSample,
  lengthBatches,
  type PlannedBatch,
  planBatches,
} from './dynamic-batching.js';
export { editSimilarity, exactMatch, lcsLength } from './edit-similarity.js';
export {
  type EvalData,
  type EvalDataSpec,
  type EvalRecord,
  firstTrainerRows,
  type LengthPolicy,
  readEvalData,
  type TrainerRows,
} from './eval-data.js';
export { type EvalSource, type EvalSplit, resolveDataArg, resolveEvalSource } from './eval-source.js';
export { type EvalReport, type EvaluateOptions, evaluate } from './evaluate.js';
export {
  type Continuer,
  drawIndices,
  type GenerationMetrics,
  type GenerationOptions,
  type GenerationSample,
  type Prediction,
  pickCompletions,
  pickLines,
  scoreGenerations,
} from './generation-metrics.js';
export { continuationText, fitPrompt, type GreedyOptions, greedyContinuation } from './greedy.js';
export { LazyTokenizer } from './lazy-tokenizer.js';
export { evaluateLoss, type LossEvalOptions, type LossMetrics } from './loss-eval.js';
