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
  ChatRenderer,
  type DataRecipe,
  drawValidationRecords,
  type FormatContext,
  type FormattedRecord,
  formatRecord,
  RecordError,
  readRecords,
  type SourceFile,
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

/** A pre-tokenized record as a sample, every id checked against the model's vocabulary. */
function tokensSample(rec: Extract<FormattedRecord, { kind: 'tokens' }>, vocabSize: number): TokenizedSample {
  rec.inputIds.forEach((id, i) => {
    if (id >= vocabSize) {
      throw new RecordError(
        `input_ids[${i}]: id ${id} is outside the model's vocabulary (0..${vocabSize - 1})`,
      );
    }
  });
  rec.labels?.forEach((id, i) => {
    if (id >= vocabSize) {
      throw new RecordError(`labels[${i}]: id ${id} is outside the model's vocabulary (0..${vocabSize - 1})`);
    }
  });
  const ids = Int32Array.from(rec.inputIds);
  // Without labels every token is a target: each token after the first carries loss.
  return { ids, labels: rec.labels ? Int32Array.from(rec.labels) : ids.slice() };
}

/** The format context once a tokenizer is there (instruct recipes render chats with its template). */
function formatContext(spec: EvalDataSpec, tok: MftTokenizer | null): FormatContext {
  let chat: ChatRenderer | null = null;
  if (tok && spec.recipe.format === 'instruct') {
    const text = (id: number | null) => (id === null ? '' : tok.decode([id], { skipSpecialTokens: false }));
    chat = new ChatRenderer(tok.chatTemplate, { bos_token: text(tok.bosId), eos_token: text(tok.eosId) });
  }
  return {
    recipe: spec.recipe,
    fields: { ...spec.recipe.fields, ...spec.fields },
    chat,
    fimRate: 0,
    seed: spec.seed,
  };
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
  let ctx: FormatContext = formatContext(spec, null);
  let withTokenizer = false;
  const read: ReadSample[] = [];
  const records: { record: number; value: EvalRecord }[] = [];
  let count = 0;
  let truncated = 0;
  let dropped = 0;

  for (const file of spec.files) {
    for await (const r of readRecords(file)) {
      if (!r.ok) {
        bad.report(r.where, r.error);
        continue;
      }
      let sample: TokenizedSample;
      let formatted: FormattedRecord;
      try {
        if (r.value.input_ids === undefined && !withTokenizer) {
          const tok = await spec.tokenizer.get(`${r.where} is text (not {"input_ids": [...]})`);
          ctx = formatContext(spec, tok);
          withTokenizer = true;
        }
        formatted = formatRecord(r.value, ctx, count);
        sample =
          formatted.kind === 'tokens'
            ? tokensSample(formatted, spec.vocabSize)
            : tokenizeRecord(spec.tokenizer.loaded!, formatted, { addEos: spec.recipe.add_eos, fim: null });
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        bad.report(r.where, e);
        continue;
      }
      const pieces = cut(sample, r.where, spec);
      if (pieces.length === 0) dropped += 1;
      else if (pieces.length > 1 || pieces[0]!.ids.length < sample.ids.length) truncated += 1;
      for (const piece of pieces) read.push({ record: count, sample: piece });
      if (formatted.kind === 'segments')
        records.push({ record: count, value: { where: r.where, formatted } });
      count += 1;
    }
  }

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
          : 'shorten the record, or evaluate with a task file whose sequence_len and truncation cut it';
      throw new MftError({
        where,
        message: `the record has ${piece.ids.length} tokens, more than the model's max_position_embeddings (${spec.maxPositions})`,
        fix,
      });
    }
  }
  return pieces;
}
