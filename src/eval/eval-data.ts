/**
 * The records of an evaluation split as samples: read with the data pipeline's sources, formatted
 * by the recipe, tokenized (or used verbatim when pre-tokenized) and checked against the model's
 * context. Unlike training, nothing is packed or shuffled here: each sample is evaluated on its
 * own, and the formatted text of each record is kept for the generation-based task metrics.
 *
 * Differences from the training pipeline, on purpose:
 * - no fill-in-the-middle (`fim_rate` is 0): eval measures plain left-to-right prediction;
 * - without a task file no sample is cut: a record longer than the model's
 *   `max_position_embeddings` is an error naming it.
 *
 * The held-out draw (`val_set_size` without validation files) numbers the usable records of the
 * training files in reading order and draws with `drawValidationRecords`, exactly as
 * `buildDataset` does, so `mft eval TASK.yaml` sees the records the trainer held out.
 */
import {
  BadRecords,
  createFormatContext,
  type DataRecipe,
  DEFAULT_MAX_RECORD_BYTES,
  drawValidationRecords,
  type FormattedRecord,
  formatRecord,
  pretokenizedSample,
  type RecordSteps,
  type SourceFile,
  sampleCounts,
  sampleRecords,
  splitRows,
  type TokenizedSample,
  tokenizeRecord,
  truncateSample,
} from '../data/index.js';
import type { MftTokenizer } from '../tokenizer/index.js';
import { fail, MftError } from '../util/index.js';
import type { EvalSample } from './dynamic-batching.js';
import type { LazyTokenizer } from './lazy-tokenizer.js';

/** How long samples are handled: cut as in training (a task file's settings), or refused. */
export type LengthPolicy =
  | { kind: 'truncate'; sequenceLen: number; truncation: 'split' | 'truncate' | 'drop' }
  | { kind: 'error' };

/** What to read and how. */
export interface EvalDataSpec {
  /** Data files, read in order. */
  readonly files: readonly SourceFile[];
  /** Keep only the records `buildDataset` holds out with this `val_set_size` (else all records). */
  readonly heldOut?: { valSetSize: number; seed: number } | null;
  readonly recipe: DataRecipe;
  /** Recipe field -> dataset column, on top of the recipe's. */
  readonly fields?: Readonly<Record<string, string>>;
  readonly seed: number;
  readonly onBadRecord: 'error' | 'skip';
  /** `max_record_bytes`: a larger record is a bad record (default DEFAULT_MAX_RECORD_BYTES). */
  readonly maxRecordBytes?: number;
  readonly length: LengthPolicy;
  /** The model's `max_position_embeddings`: no sample may be longer. */
  readonly maxPositions: number;
  /** The model's `vocab_size`: every pre-tokenized id must be below it. */
  readonly vocabSize: number;
  /** Loaded only when a record needs tokenizing. */
  readonly tokenizer: LazyTokenizer;
}

/** A record kept for the task metrics: where it came from and its formatted text. */
export interface EvalRecord {
  readonly where: string;
  /** Formatted as text segments (pre-tokenized records have no text and are not kept). */
  readonly formatted: Extract<FormattedRecord, { kind: 'segments' }>;
}

/** A split ready to evaluate. */
export interface EvalData {
  /** One per sample (a record cut by `truncation: split` gives several). */
  readonly samples: EvalSample[];
  /** Text records, in reading order, for task metrics. */
  readonly records: EvalRecord[];
  /** Usable records evaluated. */
  readonly recordCount: number;
  /** Records left out under `on_bad_record: skip`, and the first few with their reason. */
  readonly skipped: number;
  readonly skippedExamples: string[];
  /** Samples cut to `sequence_len`, and samples dropped as too long (task files only). */
  readonly truncated: number;
  readonly dropped: number;
}

interface ReadSample {
  record: number;
  sample: TokenizedSample;
}

/**
 * Read, format and tokenize the records of an evaluation split.
 * @throws MftError for a bad record under `on_bad_record: error`, a sample longer than the model's
 *   context, text data with no tokenizer, or a held-out draw from fewer than two records
 * @example
 *   const data = await readEvalData({ files: [{ path: '/abs/val.jsonl', kind: 'jsonl' }], recipe, seed: 0,
 *     onBadRecord: 'error', length: { kind: 'error' }, maxPositions: 512, vocabSize: 512, tokenizer });
 */
export async function readEvalData(spec: EvalDataSpec): Promise<EvalData> {
  const bad = new BadRecords(spec.onBadRecord);
  const context = (tokenizer: MftTokenizer | null) =>
    createFormatContext({ recipe: spec.recipe, fields: spec.fields, tokenizer, fimRate: 0, seed: spec.seed });
  let ctx = context(null);
  let withTokenizer = false;
  const vocab = { size: spec.vocabSize, name: "the model's vocabulary" };
  const steps: RecordSteps = {
    format: async (value, index, where) => {
      if (value.input_ids === undefined && !withTokenizer) {
        ctx = context(await spec.tokenizer.get(`${where} is text (not {"input_ids": [...]})`));
        withTokenizer = true;
      }
      return formatRecord(value, ctx, index);
    },
    tokenize: (rec) =>
      rec.kind === 'tokens'
        ? pretokenizedSample(rec, vocab)
        : tokenizeRecord(spec.tokenizer.loaded!, rec, { addEos: spec.recipe.add_eos, fim: null }),
    cut: (sample, at) => cut(sample, at, spec),
  };
  const read: ReadSample[] = [];
  const records: { record: number; value: EvalRecord }[] = [];
  const counts = sampleCounts();
  for (const file of spec.files) {
    const readOptions = { maxRecordBytes: spec.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES };
    for await (const r of sampleRecords(file, steps, bad, counts, readOptions)) {
      for (const piece of r.samples) read.push({ record: r.index, sample: piece });
      if (r.formatted.kind === 'segments') {
        records.push({ record: r.index, value: { where: r.where, formatted: r.formatted } });
      }
    }
  }
  const count = counts.records;
  const { truncated, dropped } = counts;

  let keep: (record: number) => boolean = () => true;
  let recordCount = count;
  if (spec.heldOut) {
    if (count < 2) {
      fail(
        'val_set_size',
        `cannot hold out validation records from ${count} record(s)`,
        'add validation files to the dataset, or give --data FILE',
      );
    }
    const drawn = drawValidationRecords(count, spec.heldOut.valSetSize, spec.heldOut.seed);
    keep = (record) => drawn.has(record);
    recordCount = drawn.size;
  }
  return {
    samples: read.filter((s) => keep(s.record)).map((s) => ({ ids: s.sample.ids, labels: s.sample.labels })),
    records: records.filter((r) => keep(r.record)).map((r) => r.value),
    recordCount,
    skipped: bad.count,
    skippedExamples: bad.examples,
    truncated,
    dropped,
  };
}

/** The samples a record gives under the length policy; each fits the model's context. */
function cut(sample: TokenizedSample, where: string, spec: EvalDataSpec): TokenizedSample[] {
  const pieces =
    spec.length.kind === 'truncate'
      ? truncateSample(sample, spec.length.sequenceLen, spec.length.truncation)
      : [sample];
  for (const piece of pieces) {
    if (piece.ids.length > spec.maxPositions) {
      const fix =
        spec.length.kind === 'truncate'
          ? `set sequence_len to at most ${spec.maxPositions} in the task file`
          : 'give --sequence-len N (and --truncation) to cut long records, or evaluate with a task file';
      throw new MftError({
        where,
        message: `the record has ${piece.ids.length} tokens, more than the model's max_position_embeddings (${spec.maxPositions})`,
        fix,
      });
    }
  }
  return pieces;
}

/** How the trainer lays out the validation samples in rows (a task file's settings). */
export interface TrainerRows {
  readonly seqLen: number;
  readonly packing: boolean;
  readonly seed: number;
}

/**
 * The validation rows as the trainer packs them (`buildDataset`'s layout of these samples), and
 * `data` narrowed to the samples of the first `max` rows: the rows a run's `eval_loss` covers
 * with `eval_max_samples: max`.
 * @returns the narrowed data (all of it when max is null) and the number of rows of the split
 */
export function firstTrainerRows(
  data: EvalData,
  layout: TrainerRows,
  max: number | null,
): { data: EvalData; rows: number } {
  const rows = splitRows(
    data.samples.map((s) => s.ids.length),
    { ...layout, split: 'validation' },
  );
  if (max === null || max >= rows.length) return { data, rows: rows.length };
  const kept = rows
    .slice(0, max)
    .flat()
    .sort((a, b) => a - b);
  return { data: { ...data, samples: kept.map((i) => data.samples[i]!) }, rows: rows.length };
}
