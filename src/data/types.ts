/**
 * The shapes the data pipeline passes between its steps: what it reads from the task
 * configuration, what a formatted record looks like, and a tokenized sample.
 */

/** Recipe formats (`recipes/<name>.yaml` `format:`). */
export type RecipeFormat = 'text' | 'completion' | 'alpaca' | 'instruct' | 'code_completion';

/** The part of a recipe the data pipeline reads. */
export interface DataRecipe {
  readonly name: string;
  readonly format: RecipeFormat;
  /** Recipe field -> default dataset column (`{prompt: 'prompt', completion: 'completion'}`). */
  readonly fields: Readonly<Record<string, string>>;
  /** Which tokens carry loss: everything, or only the response parts. */
  readonly train_on: 'all' | 'completion' | 'output' | 'assistant';
  /** Append the tokenizer's EOS to every sample (and train on it). */
  readonly add_eos: boolean;
}

/** The task keys the data pipeline reads (a slice of `TaskConfig`, which any task config satisfies). */
export interface DataConfig {
  /** Absolute paths of data files or dataset folders. */
  readonly dataset: readonly string[];
  readonly recipe: DataRecipe;
  readonly seed: number;
  readonly cache_dir: string;
  readonly sequence_len: number;
  readonly sample_packing: boolean;
  readonly truncation: 'split' | 'truncate' | 'drop';
  /** A fraction in (0, 1) of the records, or a count of records (0: none). */
  readonly val_set_size: number;
  readonly on_bad_record: 'error' | 'skip';
  /** A record over this many bytes is a bad record (record-size.ts; default DEFAULT_MAX_RECORD_BYTES). */
  readonly max_record_bytes?: number;
  /** Recipe field -> dataset column, overriding the recipe's `fields`. */
  readonly fields: Readonly<Record<string, string>>;
  readonly fim_rate: number;
  /** Where each value came from (`TaskConfig.sources`), to tell a default from a user's choice. */
  readonly sources?: Readonly<Record<string, string>>;
}

/** A run of text that either carries loss or not. */
export interface TextSegment {
  text: string;
  trained: boolean;
}

/**
 * A record after recipe formatting, before tokenization:
 * - `segments`: text pieces, each trained or not (`chat`: pieces of one rendered conversation, whose
 *   tokenization must split at the piece boundaries);
 * - `fim`: a code sample cut for fill-in-the-middle;
 * - `tokens`: a pre-tokenized record used verbatim.
 */
export type FormattedRecord =
  | { kind: 'segments'; segments: TextSegment[]; chat: boolean }
  | { kind: 'fim'; prefix: string; middle: string; suffix: string }
  | { kind: 'tokens'; inputIds: number[]; labels: number[] | null };

/**
 * A tokenized sample: `ids` and `labels` of equal length, labels in the Hugging Face convention
 * (unshifted: `labels[t]` is the target of the prediction made at t - 1; -100 = no loss).
 */
export interface TokenizedSample {
  ids: Int32Array;
  labels: Int32Array;
}

/** Figures of one split. */
export interface SplitStats {
  records: number;
  samples: number;
  rows: number;
  /** Tokens that are not padding. */
  tokens: number;
  /** Positions that carry loss (targets that are not -100). */
  trainedTokens: number;
  /** tokens / (rows * sequence_len). */
  packingEfficiency: number;
}

/** What building the dataset found. */
export interface DataStats {
  /** Usable records read, all splits. */
  records: number;
  skippedRecords: number;
  /** `where: message` of the first skipped records. */
  skippedExamples: string[];
  /** Samples cut to fit sequence_len (`truncation: split` or `truncate`). */
  truncated: number;
  /** Samples left out for being too long (`truncation: drop`). */
  dropped: number;
  /** Where the validation split came from. */
  validationFrom: 'files' | 'val_set_size' | 'none';
  train: SplitStats;
  validation: SplitStats | null;
}
