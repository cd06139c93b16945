/**
 * One data file through the recipe, record by record: read -> format -> tokenize -> cut. The
 * training data (`buildDataset`) and evaluation (`readEvalData`) both read records this way; they
 * differ only in the steps they plug in (which tokenizer, which length rule).
 *
 * A record that cannot be used (unreadable, a RecordError while formatting or tokenizing) goes to
 * `BadRecords`, which stops or skips and counts as `on_bad_record` says.
 */
import type { MftTokenizer } from '../tokenizer/index.js';
import type { BadRecords } from './bad-records.js';
import { ChatRenderer } from './format/chat-template.js';
import type { FormatContext } from './format/format-record.js';
import { RecordError } from './record-error.js';
import { recordBytes, recordTooLarge } from './record-size.js';
import { type ReadOptions, readRecords, type SourceFile } from './sources/index.js';
import type { DataRecipe, FormattedRecord, TokenizedSample } from './types.js';

/** The steps a record goes through; `format` and `tokenize` throw RecordError for an unusable record. */
export interface RecordSteps {
  /** The record as the recipe formats it (`index`: its number among the usable records so far). */
  format(
    value: Readonly<Record<string, unknown>>,
    index: number,
    where: string,
  ): FormattedRecord | Promise<FormattedRecord>;
  tokenize(rec: FormattedRecord): TokenizedSample;
  /** The samples a tokenized record gives (truncation); none when it is dropped. */
  cut(sample: TokenizedSample, where: string): TokenizedSample[];
}

/** A usable record and the samples it gave. */
export interface SampledRecord {
  readonly where: string;
  /** Its number among the usable records of the files read with the same counts. */
  readonly index: number;
  readonly formatted: FormattedRecord;
  readonly samples: TokenizedSample[];
}

/** Running counts of `sampleRecords`, shared by the files of one split. */
export interface SampleCounts {
  /** Usable records. */
  records: number;
  /** Records whose samples were cut (split into pieces or shortened). */
  truncated: number;
  /** Records dropped as too long. */
  dropped: number;
}

/** Zeroed counts. */
export function sampleCounts(): SampleCounts {
  return { records: 0, truncated: 0, dropped: 0 };
}

/**
 * The usable records of `file` with their samples, in reading order.
 * @param counts updated as records are read (pass the same object for every file of a split)
 * @example
 *   const counts = sampleCounts();
 *   for await (const r of sampleRecords(file, steps, bad, counts)) keep(r.samples);
 */
export async function* sampleRecords(
  file: SourceFile,
  steps: RecordSteps,
  bad: BadRecords,
  counts: SampleCounts,
  read: ReadOptions = {},
): AsyncGenerator<SampledRecord> {
  const max = read.maxRecordBytes ?? Number.POSITIVE_INFINITY;
  for await (const r of readRecords(file, read)) {
    if (!r.ok) {
      bad.report(r.where, r.error);
      continue;
    }
    // JSON Lines and JSON bound each record as they read it; the others hand over parsed records
    if (file.kind !== 'jsonl' && file.kind !== 'json' && max < Number.POSITIVE_INFINITY) {
      const bytes = recordBytes(r.value, max);
      if (bytes > max) {
        bad.report(r.where, recordTooLarge(bytes, max));
        continue;
      }
    }
    let formatted: FormattedRecord;
    let sample: TokenizedSample;
    try {
      formatted = await steps.format(r.value, counts.records, r.where);
      sample = steps.tokenize(formatted);
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      bad.report(r.where, e);
      continue;
    }
    const samples = steps.cut(sample, r.where);
    if (samples.length === 0) counts.dropped += 1;
    else if (samples.length > 1 || samples[0]!.ids.length < sample.ids.length) counts.truncated += 1;
    const index = counts.records;
    counts.records += 1;
    yield { where: r.where, index, formatted, samples };
  }
}

/** What a format context is made of. */
export interface FormatContextOptions {
  readonly recipe: DataRecipe;
  /** Recipe field -> dataset column, on top of the recipe's. */
  readonly fields?: Readonly<Record<string, string>>;
  /** Instruct recipes render chats with its template; null until a tokenizer is loaded. */
  readonly tokenizer: MftTokenizer | null;
  readonly fimRate: number;
  readonly seed: number;
}

/** The context `formatRecord` needs: the recipe's fields with the task's on top, and the chat renderer. */
export function createFormatContext(opts: FormatContextOptions): FormatContext {
  const tok = opts.tokenizer;
  let chat: ChatRenderer | null = null;
  if (tok && opts.recipe.format === 'instruct') {
    const text = (id: number | null) => (id === null ? '' : tok.decode([id], { skipSpecialTokens: false }));
    chat = new ChatRenderer(tok.chatTemplate, { bos_token: text(tok.bosId), eos_token: text(tok.eosId) });
  }
  return {
    recipe: opts.recipe,
    fields: { ...opts.recipe.fields, ...opts.fields },
    chat,
    fimRate: opts.fimRate,
    seed: opts.seed,
  };
}
