/**
 * Task metrics that generate text: line completion for code (CodeXGLUE's line-level task) and
 * exact match of completions. Both run greedy decoding on a seeded sample of at most `maxSamples`
 * records, one prompt per record.
 *
 * Line completion (CodeXGLUE, Lu et al. 2021, "CodeXGLUE", CodeCompletion-line): given a file up to
 * a line boundary, generate the next line. mft picks one line per sampled record, uniformly among
 * its non-blank lines after the first; the prompt is the text before that line (ending in its
 * newline), the prediction is the generated text up to the first newline. Scores: exact match of
 * the whitespace-separated words, and edit similarity (see edit-similarity.ts), of the trimmed
 * prediction and reference.
 *
 * Completion exact match: the prompt part of a completion / alpaca record is the prompt, the
 * generated text (stopped at EOS or `maxNewTokens`) is compared with the completion part:
 * exact match after trimming surrounding whitespace, and edit similarity.
 */
import type { LoadedModel, ModelLora } from '../model/index.js';
import type { MftTokenizer } from '../tokenizer/index.js';
import { mixSeed, Rng } from '../util/index.js';
import { editSimilarity, exactMatch } from './edit-similarity.js';
import type { EvalRecord } from './eval-data.js';
import { fitPrompt, greedyContinuation } from './greedy.js';

/** One prompt of a generation metric. */
export interface GenerationSample {
  /** The record (`data/val.jsonl:3`), and for line completion `:line N` (1-based). */
  where: string;
  prompt: string;
  reference: string;
}

/** One scored prediction. */
export interface Prediction extends GenerationSample {
  prediction: string;
  exact_match: boolean;
  edit_similarity: number;
}

/** What a generation metric measured. */
export interface GenerationMetrics {
  /** Prompts scored. */
  samples: number;
  /** Fraction of exact matches. */
  exact_match: number;
  /** Mean edit similarity in [0, 1]. */
  edit_similarity: number;
  /** Tokens generated, and the wall-clock seconds of the generation. */
  generated_tokens: number;
  seconds: number;
  predictions: Omit<Prediction, 'prompt'>[];
}

/**
 * Where the greedy continuations run when not on this thread: `lanes` at once (workers), lane k
 * taking the next prompt when its last is done. Each gives what `greedyContinuation` gives here.
 */
export interface Continuer {
  readonly lanes: number;
  continue(
    lane: number,
    promptIds: number[],
    opts: { maxNewTokens: number; stopAtNewline: boolean },
  ): Promise<{ ids: number[]; text: string }>;
}

/** Options of the generation metrics. */
export interface GenerationOptions {
  lora?: ModelLora;
  /** Most tokens generated per prompt. */
  maxNewTokens: number;
  /** Run the continuations there (with the adapter it was made for; `lora` is then unused). */
  continuer?: Continuer;
}

// Stream id of the sample draws in `mixSeed(seed, SAMPLE_STREAM, ...)` ("EVAL").
const SAMPLE_STREAM = 0x4556414c;

/** Indices of at most `k` of `n` items: all in order when n <= k, else a seeded draw, in order. */
export function drawIndices(n: number, k: number, seed: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= k) return all;
  return new Rng(mixSeed(seed, SAMPLE_STREAM))
    .shuffle(all)
    .slice(0, k)
    .sort((a, b) => a - b);
}

/** The record's whole text (code_completion and text records are one segment). */
function recordText(r: EvalRecord): string {
  return r.formatted.segments.map((s) => s.text).join('');
}

/**
 * Line-completion prompts: up to `maxSamples` records (seeded draw), one line each, uniformly among
 * the record's non-blank lines after the first.
 * @example pickLines(data.records, 64, 0)[0]; // {where: 'val.jsonl:1:line 3', prompt: 'a\nb\n', reference: 'c'}
 */
export function pickLines(
  records: readonly EvalRecord[],
  maxSamples: number,
  seed: number,
): GenerationSample[] {
  const candidates = records
    .map((r, index) => {
      const lines = recordText(r).split('\n');
      const targets: number[] = [];
      for (let k = 1; k < lines.length; k++) if (lines[k]!.trim() !== '') targets.push(k);
      return { r, index, lines, targets };
    })
    .filter((c) => c.targets.length > 0);
  return drawIndices(candidates.length, maxSamples, seed).map((i) => {
    const c = candidates[i]!;
    const k = c.targets[new Rng(mixSeed(seed, SAMPLE_STREAM, c.index)).int(c.targets.length)]!;
    return {
      where: `${c.r.where}:line ${k + 1}`,
      prompt: `${c.lines.slice(0, k).join('\n')}\n`,
      reference: c.lines[k]!.replace(/\r$/, ''),
    };
  });
}

/**
 * Completion prompts: up to `maxSamples` records (seeded draw) whose first segment is the prompt
 * and second the completion (completion and alpaca recipes).
 */
export function pickCompletions(
  records: readonly EvalRecord[],
  maxSamples: number,
  seed: number,
): GenerationSample[] {
  const usable = records.filter((r) => !r.formatted.chat && r.formatted.segments.length === 2);
  return drawIndices(usable.length, maxSamples, seed).map((i) => {
    const r = usable[i]!;
    return {
      where: r.where,
      prompt: r.formatted.segments[0]!.text,
      reference: r.formatted.segments[1]!.text,
    };
  });
}

/** The prompt's ids as training sees them: with the tokenizer's special tokens, without a trailing EOS. */
function promptIds(tok: MftTokenizer, prompt: string): number[] {
  const ids = tok.encode(prompt, { addSpecialTokens: true });
  if (tok.addsEos && ids.length > 0 && ids[ids.length - 1] === tok.eosId) ids.pop();
  return ids;
}

/**
 * Generate for each sample and score it.
 * @param kind 'line': stop at the first newline, exact match of words; 'completion': stop at EOS,
 *   exact match of the trimmed text
 * @example
 *   const m = await scoreGenerations(model, tok, pickLines(data.records, 64, 0), 'line', { maxNewTokens: 128 });
 *   m.exact_match; m.edit_similarity;
 */
export async function scoreGenerations(
  model: LoadedModel,
  tok: MftTokenizer,
  samples: readonly GenerationSample[],
  kind: 'line' | 'completion',
  opts: GenerationOptions,
): Promise<GenerationMetrics> {
  const maxPositions = model.spec.max_position_embeddings;
  const maxNewTokens = Math.max(1, Math.min(opts.maxNewTokens, maxPositions - 1));
  const started = performance.now();
  const stopAtNewline = kind === 'line';
  const prompts = samples.map((s) =>
    fitPrompt(promptIds(tok, s.prompt), maxPositions, maxNewTokens, tok.bosId),
  );
  const outs: { ids: number[]; text: string }[] = new Array(samples.length);
  const { continuer } = opts;
  if (continuer) {
    // Each lane takes the next prompt when it is free (continuations differ in length); results
    // keep the samples' order.
    let next = 0;
    const lane = async (k: number) => {
      for (let i = next++; i < prompts.length; i = next++)
        outs[i] = await continuer.continue(k, prompts[i]!, { maxNewTokens, stopAtNewline });
    };
    await Promise.all(Array.from({ length: continuer.lanes }, (_, k) => lane(k)));
  } else {
    for (const [i, ids] of prompts.entries())
      outs[i] = await greedyContinuation(model, tok, ids, { maxNewTokens, lora: opts.lora, stopAtNewline });
  }
  let generated = 0;
  const predictions: Omit<Prediction, 'prompt'>[] = samples.map((s, i) => {
    const out = outs[i]!;
    generated += out.ids.length;
    const prediction = out.text;
    return {
      where: s.where,
      reference: s.reference,
      prediction,
      exact_match:
        kind === 'line' ? exactMatch(prediction, s.reference) : prediction.trim() === s.reference.trim(),
      edit_similarity: editSimilarity(prediction.trim(), s.reference.trim()),
    };
  });
  const n = predictions.length;
  const mean = (f: (p: Omit<Prediction, 'prompt'>) => number) =>
    n === 0 ? Number.NaN : predictions.reduce((sum, p) => sum + f(p), 0) / n;
  return {
    samples: n,
    exact_match: mean((p) => (p.exact_match ? 1 : 0)),
    edit_similarity: mean((p) => p.edit_similarity),
    generated_tokens: generated,
    seconds: (performance.now() - started) / 1000,
    predictions,
  };
}
