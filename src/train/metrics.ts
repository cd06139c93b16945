/**
 * `metrics.jsonl`: one JSON object per line, for programs (style rule 24). Train rows and eval rows
 * have fixed keys; eval rows never use the key `loss`, so a reader can select with `type` or by key.
 *
 * Appends are plain `appendFileSync` calls: a kill can leave a half-written last line, which
 * `truncateMetrics` (run on resume) drops together with every row after the resumed checkpoint,
 * rewriting the file atomically so it reads as one uninterrupted run.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/index.js';

export interface TrainRow {
  type: 'train';
  /** Optimizer steps done (1-based number of the update just made). */
  step: number;
  /** Sum of token losses / number of trained tokens over all micro-batches of this step (nats). */
  loss: number;
  /** Learning rate used by this step. */
  lr: number;
  /** Global L2 norm of the gradients before clipping. */
  grad_norm: number;
  /** Trained tokens (labels != -100) of this step: the loss's denominator. */
  tokens: number;
  /** Positions processed (rows x sequence_len) per second of training compute since the last row. */
  tokens_per_second: number;
  /** Seconds since the run started (continues across resumes). */
  elapsed: number;
  /** Fractional epoch reached after this step. */
  epoch: number;
}

export interface EvalRow {
  type: 'eval';
  step: number;
  /** Mean token loss over the evaluated validation rows (nats). */
  eval_loss: number;
  /** exp(eval_loss). */
  eval_perplexity: number;
  /** Tokens carrying loss that were evaluated. */
  eval_tokens: number;
  /** Validation rows evaluated. */
  eval_rows: number;
  elapsed: number;
}

export type MetricsRow = TrainRow | EvalRow;

/** Append one row to `metrics.jsonl`. */
export function appendMetrics(path: string, row: MetricsRow): void {
  appendFileSync(path, `${JSON.stringify(row)}\n`);
}

/** Every complete row of a metrics file (a torn last line is skipped). */
export function readMetrics(path: string): MetricsRow[] {
  if (!existsSync(path)) return [];
  const rows: MetricsRow[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch {
      // a line torn by a kill during an append: the resumed run writes it again
    }
  }
  return rows;
}

/**
 * Rewrite `metrics.jsonl` atomically to the rows of steps <= `step` (those the checkpoint being
 * resumed already includes), so that appending continues it as one uninterrupted run.
 * @returns the rows kept
 */
export function truncateMetrics(path: string, step: number): MetricsRow[] {
  const kept = readMetrics(path).filter((r) => typeof r.step === 'number' && r.step <= step);
  writeFileAtomic(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return kept;
}
