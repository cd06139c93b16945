/**
 * `buildDataset(config, tokenizer)`: data files -> records -> recipe formatting -> tokens ->
 * truncation -> validation split -> packed rows, or the same result from the cache.
 *
 *   for each record (streamed):  formatRecord -> tokenizeRecord -> truncateSample -> token store
 *   then:                        validation split (files, or val_set_size by seed) -> packing per split
 *
 * Records are numbered per split in reading order; the validation split drawn by `val_set_size`
 * picks whole records (all pieces of a split record stay together) with a seeded shuffle.
 */
import { mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MftTokenizer } from '../tokenizer/index.js';
import { displayPath, fail, MftError, mixSeed, Rng } from '../util/index.js';
import { BadRecords } from './bad-records.js';
import {
  cacheKey,
  type DatasetParts,
  decodeDataset,
  encodeDataset,
  readCacheFile,
  sourceIdentity,
  tokenizerIdentity,
  writeCacheFile,
} from './cache.js';
import { formatRecord } from './format/format-record.js';
import { type SplitRowsOptions, splitRows } from './pack.js';
import { createPackedSplit, type PackedSplit, type SplitLayout } from './packed-split.js';
import { byteProgress } from './progress.js';
import { createFormatContext, type RecordSteps, sampleCounts, sampleRecords } from './record-samples.js';
import { DEFAULT_MAX_RECORD_BYTES } from './record-size.js';
import { type DatasetFiles, resolveDataset, type SourceFile } from './sources/index.js';
import {
  sampleAt,
  sampleLength,
  sampleTrainedTargets,
  type TokenStore,
  TokenStoreBuilder,
} from './token-store.js';
import { findFimTokens, type TokenizeOptions, tokenizeRecord } from './tokenize.js';
import { truncateSample } from './truncate.js';
import type { DataConfig, DataStats, SplitStats, TokenizedSample } from './types.js';

/** The packed dataset of a task, ready for training and evaluation. */
export interface PackedDataset {
  readonly seqLen: number;
  readonly train: PackedSplit;
  readonly validation: PackedSplit | null;
  readonly stats: DataStats;
  /** sha256 of everything the dataset depends on (the cache file name). */
  readonly cacheKey: string;
  /** Id used for padding. */
  readonly padId: number;
  /** The first `n` training samples in reading order (ids and unshifted labels), for inspection. */
  examples(n: number): TokenizedSample[];
}

export interface BuildOptions {
  /** Receives progress lines and warnings (default: stderr). */
  log?: (line: string) => void;
  /** Show a progress bar on a TTY while tokenizing. */
  progress?: boolean;
}

// Stream ids of `mixSeed(seed, STREAM, ...)` for the draws of this module.
const VAL_STREAM = 0x56414c;

function checkConfig(config: DataConfig): void {
  const L = config.sequence_len;
  if (!(Number.isInteger(L) && L >= 2)) fail('sequence_len', `expected an integer >= 2, got ${L}`);
  const v = config.val_set_size;
  if (!(v >= 0) || (v >= 1 && !Number.isInteger(v))) {
    fail('val_set_size', `expected a fraction in (0, 1) or a count of records, got ${v}`);
  }
  if (!(config.fim_rate >= 0 && config.fim_rate <= 1))
    fail('fim_rate', `expected a number in [0, 1], got ${config.fim_rate}`);
}

/** Where cache files go: `<cache_dir>/data`, or a temporary folder (with a warning) when not writable. */
function cacheFolder(cacheDir: string, log: (line: string) => void): string {
  const wanted = join(cacheDir, 'data');
  try {
    mkdirSync(wanted, { recursive: true });
    return wanted;
  } catch (e) {
    const fallback = join(tmpdir(), 'mft-cache', 'data');
    mkdirSync(fallback, { recursive: true });
    log(
      `warning: cache_dir ${cacheDir} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); caching the dataset in ${fallback} instead`,
    );
    return fallback;
  }
}

interface ReadResult {
  store: TokenStore;
  /** Record index (within its split's files) of each sample. */
  sampleRecord: Int32Array;
  /** 1 when the sample comes from validation files. */
  sampleFromVal: Uint8Array;
  trainRecords: number;
  valRecords: number;
  bad: BadRecords;
  truncated: number;
  dropped: number;
}

async function readAndTokenize(
  config: DataConfig,
  tok: MftTokenizer,
  files: DatasetFiles,
  opts: BuildOptions,
): Promise<ReadResult> {
  const log = opts.log ?? (() => {});
  const recipe = config.recipe;
  if (recipe.format === 'instruct' && tok.chatTemplate === null) {
    log(
      `note: the tokenizer in ${tok.dir} has no chat_template; rendering chats with the default ChatML template`,
    );
  }
  const fimRate = recipe.format === 'code_completion' ? config.fim_rate : 0;
  const fim = fimRate > 0 ? findFimTokens(tok) : null;
  if (fimRate > 0 && fim === null) {
    fail(
      'fim_rate',
      `fill-in-the-middle asked for (fim_rate: ${fimRate}) but the tokenizer in ${tok.dir} has no FIM tokens (<fim_prefix>/<fim_middle>/<fim_suffix> or <PRE>/<MID>/<SUF>)`,
      'set fim_rate: 0, or use a code model whose tokenizer has FIM tokens',
    );
  }
  const ctx = createFormatContext({
    recipe,
    fields: config.fields,
    tokenizer: tok,
    fimRate,
    seed: config.seed,
  });
  if (recipe.add_eos && tok.eosId === null)
    log(`warning: the tokenizer in ${tok.dir} has no EOS token; samples end without one`);
  const tokOpts: TokenizeOptions = { addEos: recipe.add_eos, fim };
  const steps: RecordSteps = {
    format: (value, index) => formatRecord(value, ctx, index),
    tokenize: (rec) => tokenizeRecord(tok, rec, tokOpts),
    cut: (sample) => truncateSample(sample, config.sequence_len, config.truncation),
  };

  const builder = new TokenStoreBuilder();
  const sampleRecord: number[] = [];
  const sampleFromVal: number[] = [];
  const bad = new BadRecords(config.on_bad_record);
  const counts = { train: sampleCounts(), validation: sampleCounts() };
  const all: [SourceFile, 'train' | 'validation'][] = [
    ...files.train.map((f) => [f, 'train'] as [SourceFile, 'train']),
    ...files.validation.map((f) => [f, 'validation'] as [SourceFile, 'validation']),
  ];
  const progress = byteProgress(
    all.reduce((s, [f]) => s + statSync(f.path).size, 0),
    { enabled: opts.progress ?? false },
  );
  try {
    for (const [file, split] of all) {
      const read = {
        onProgress: (b: number) => progress.update(b),
        maxRecordBytes: maxRecordBytesOf(config),
      };
      for await (const r of sampleRecords(file, steps, bad, counts[split], read)) {
        progress.records(counts.train.records + counts.validation.records);
        for (const piece of r.samples) {
          builder.push(piece);
          sampleRecord.push(r.index);
          sampleFromVal.push(split === 'validation' ? 1 : 0);
        }
      }
      progress.nextFile(statSync(file.path).size);
    }
  } finally {
    progress.stop();
  }
  const truncated = counts.train.truncated + counts.validation.truncated;
  const dropped = counts.train.dropped + counts.validation.dropped;
  return {
    store: builder.finish(),
    sampleRecord: Int32Array.from(sampleRecord),
    sampleFromVal: Uint8Array.from(sampleFromVal),
    trainRecords: counts.train.records,
    valRecords: counts.validation.records,
    bad,
    truncated,
    dropped,
  };
}

/** The record indices (of the training files) drawn for validation by `val_set_size`. */
export function drawValidationRecords(numRecords: number, valSetSize: number, seed: number): Set<number> {
  if (valSetSize <= 0 || numRecords === 0) return new Set();
  const wanted = valSetSize < 1 ? Math.round(valSetSize * numRecords) : valSetSize;
  const k = Math.min(Math.max(wanted, 1), numRecords - 1);
  const order = new Rng(mixSeed(seed, VAL_STREAM)).shuffle(Array.from({ length: numRecords }, (_, i) => i));
  return new Set(order.slice(0, k));
}

/** Rows of one split (store indices of its samples). */
function layoutSplit(store: TokenStore, samples: number[], opts: SplitRowsOptions): SplitLayout {
  const rows = splitRows(
    samples.map((s) => sampleLength(store, s)),
    opts,
  ).map((row) => row.map((i) => samples[i]!));
  const rowStarts = new Int32Array(rows.length + 1);
  rows.forEach((row, i) => {
    rowStarts[i + 1] = rowStarts[i]! + row.length;
  });
  return { samples: Int32Array.from(rows.flat()), rowStarts };
}

function splitStats(store: TokenStore, layout: SplitLayout, records: number, seqLen: number): SplitStats {
  let tokens = 0;
  let trainedTokens = 0;
  for (const s of layout.samples) {
    tokens += sampleLength(store, s);
    trainedTokens += sampleTrainedTargets(store, s);
  }
  const rows = layout.rowStarts.length - 1;
  return {
    records,
    samples: layout.samples.length,
    rows,
    tokens,
    trainedTokens,
    packingEfficiency: rows === 0 ? 0 : tokens / (rows * seqLen),
  };
}

/** The dataset over its parts (from a fresh build or from the cache). */
function assemble(parts: DatasetParts): PackedDataset {
  const { store, seqLen, padId } = parts;
  return {
    seqLen,
    train: createPackedSplit(store, parts.train, seqLen, padId),
    validation: parts.validation ? createPackedSplit(store, parts.validation, seqLen, padId) : null,
    stats: parts.stats,
    cacheKey: parts.key,
    padId,
    examples: (n) => Array.from(parts.exampleSamples.subarray(0, n), (s) => sampleAt(store, s)),
  };
}

function summary(stats: DataStats, seqLen: number): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const line = (name: string, s: SplitStats) =>
    `data: ${name} ${s.records} records -> ${s.samples} samples, ${s.tokens} tokens (${s.trainedTokens} trained) in ${s.rows} rows of ${seqLen} (packing efficiency ${pct(s.packingEfficiency)})`;
  const out = [line('train', stats.train)];
  if (stats.validation) out.push(line('validation', stats.validation));
  if (stats.truncated > 0 || stats.dropped > 0) {
    out.push(
      `data: ${stats.truncated} samples cut to ${seqLen} tokens, ${stats.dropped} dropped as too long`,
    );
  }
  if (stats.skippedRecords > 0) {
    out.push(`data: skipped ${stats.skippedRecords} bad records, first: ${stats.skippedExamples.join('; ')}`);
  }
  return out;
}

/**
 * Build (or load from the cache) the packed dataset of a task.
 * @param config the task's data settings (a `TaskConfig` fits)
 * @param tokenizer the base model's tokenizer
 * @param opts `log` receives summary lines and warnings; `progress` shows a bar on a TTY
 * @example
 *   const data = await buildDataset(config, await loadTokenizer(config.base_model));
 *   const batch = data.train.batch(data.train.epochOrder(0, config.seed).slice(0, 4));
 */
export async function buildDataset(
  config: DataConfig,
  tokenizer: MftTokenizer,
  opts: BuildOptions = {},
): Promise<PackedDataset> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  checkConfig(config);
  const files = resolveDataset(config.dataset);
  const seqLen = config.sequence_len;
  const recipe = config.recipe;
  const key = cacheKey({
    sources: { train: files.train.map(sourceIdentity), validation: files.validation.map(sourceIdentity) },
    recipe: {
      format: recipe.format,
      fields: recipe.fields,
      train_on: recipe.train_on,
      add_eos: recipe.add_eos,
    },
    data: {
      fields: config.fields,
      fim_rate: config.fim_rate,
      seed: config.seed,
      sequence_len: seqLen,
      sample_packing: config.sample_packing,
      truncation: config.truncation,
      val_set_size: config.val_set_size,
      on_bad_record: config.on_bad_record,
      // Only when not the default: keys (and the data_hash of runs) from before the setting existed stay valid.
      ...(maxRecordBytesOf(config) !== DEFAULT_MAX_RECORD_BYTES
        ? { max_record_bytes: maxRecordBytesOf(config) }
        : {}),
    },
    tokenizer: tokenizerIdentity(tokenizer),
  });
  const folder = cacheFolder(config.cache_dir, log);
  const cachePath = join(folder, `${key}.mftdata`);
  const cached = readCacheFile(cachePath);
  const parts = cached ? decodeDataset(cached, key) : null;
  if (parts) {
    const hit = assemble(parts);
    log(`data: loaded from cache ${cachePath}`);
    for (const line of summary(hit.stats, seqLen)) log(line);
    return hit;
  }

  const read = await readAndTokenize(config, tokenizer, files, { ...opts, log });
  const { store, sampleRecord, sampleFromVal } = read;
  let validationFrom: DataStats['validationFrom'] = 'none';
  let valDrawn = new Set<number>();
  if (files.validation.length > 0) {
    validationFrom = 'files';
    const chosen = config.sources?.val_set_size;
    if (config.val_set_size > 0 && (chosen === undefined || chosen === 'task file' || chosen === '--set')) {
      log('note: the dataset has validation files; val_set_size is not used');
    }
  } else if (config.val_set_size > 0) {
    // an empty file is the problem to report, not the validation split it cannot give
    if (read.trainRecords === 0 && read.bad.count === 0) throw noRecords(files.train.map((f) => f.path));
    if (read.trainRecords < 2) {
      fail(
        'val_set_size',
        `cannot hold out validation records from ${read.trainRecords} record(s)`,
        'set val_set_size: 0',
      );
    }
    validationFrom = 'val_set_size';
    valDrawn = drawValidationRecords(read.trainRecords, config.val_set_size, config.seed);
  }
  const trainSamples: number[] = [];
  const valSamples: number[] = [];
  for (let s = 0; s < sampleRecord.length; s++) {
    const isVal = sampleFromVal[s] === 1 || (sampleFromVal[s] === 0 && valDrawn.has(sampleRecord[s]!));
    (isVal ? valSamples : trainSamples).push(s);
  }
  if (trainSamples.length === 0) {
    if (read.trainRecords === 0 && read.bad.count === 0 && read.dropped === 0) {
      throw noRecords(files.train.map((f) => f.path));
    }
    const why =
      read.bad.count > 0
        ? `all ${read.bad.count} records were bad (first: ${read.bad.examples[0]})`
        : read.dropped > 0
          ? `all ${read.dropped} samples were longer than sequence_len ${seqLen} and dropped`
          : 'the data files hold no records';
    throw new MftError({
      where: 'dataset',
      message: `no training samples: ${why}`,
      fix: 'check the data files, the recipe fields and truncation',
    });
  }
  const rowOptions = { seqLen, packing: config.sample_packing, seed: config.seed };
  const train = layoutSplit(store, trainSamples, { ...rowOptions, split: 'train' });
  const validation =
    valSamples.length > 0 ? layoutSplit(store, valSamples, { ...rowOptions, split: 'validation' }) : null;
  const valRecords = validationFrom === 'files' ? read.valRecords : valDrawn.size;
  const stats: DataStats = {
    records: read.trainRecords + read.valRecords,
    skippedRecords: read.bad.count,
    skippedExamples: read.bad.examples,
    truncated: read.truncated,
    dropped: read.dropped,
    validationFrom: validation ? validationFrom : 'none',
    train: splitStats(
      store,
      train,
      read.trainRecords - (validationFrom === 'val_set_size' ? valRecords : 0),
      seqLen,
    ),
    validation: validation ? splitStats(store, validation, valRecords, seqLen) : null,
  };
  const built: DatasetParts = {
    key,
    seqLen,
    padId: padIdOf(tokenizer),
    store,
    train,
    validation,
    stats,
    exampleSamples: Int32Array.from(trainSamples.slice(0, 64).sort((a, b) => a - b)),
  };
  try {
    writeCacheFile(cachePath, encodeDataset(built), folder);
  } catch (e) {
    log(
      `warning: could not write the dataset cache ${cachePath} (${(e as Error).message}); continuing without it`,
    );
  }
  for (const line of summary(stats, seqLen)) log(line);
  return assemble(built);
}

/** The id pads use: the tokenizer's pad id, else EOS, else 0 (pads carry no loss and attend only to pads). */
function padIdOf(tok: MftTokenizer): number {
  return tok.padId ?? tok.eosId ?? 0;
}

/** The error for training files that hold no record (empty, or only blank lines). */
function noRecords(paths: string[]): MftError {
  const shown = paths.map((p) => displayPath(p));
  return new MftError({
    where: shown.join(', '),
    message: `${paths.length === 1 ? 'holds' : 'hold'} no records (the file${paths.length === 1 ? ' is' : 's are'} empty or only blank lines)`,
    fix: 'add records to it, or point dataset at the files that have them',
  });
}

function maxRecordBytesOf(config: DataConfig): number {
  return config.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES;
}
