/**
 * The data stage: data files -> recipe formatting -> tokens -> packed rows -> batches.
 * See `buildDataset` for the whole pipeline; the pieces are exported for evaluation and tests.
 */
export { BadRecords } from './bad-records.js';
export {
  type BuildOptions,
  buildDataset,
  drawValidationRecords,
  type PackedDataset,
} from './build-dataset.js';
export { CACHE_VERSION } from './cache.js';
export { CHAT_ROLES, ChatRenderer, DEFAULT_CHAT_TEMPLATE, parseMessages } from './format/chat-template.js';
export {
  ALPACA_PROMPT_NO_INPUT,
  ALPACA_PROMPT_WITH_INPUT,
  type FormatContext,
  formatRecord,
} from './format/format-record.js';
export {
  buildCodeDataset,
  datasetContentHash,
  type FromDirOptions,
  type FromDirReport,
} from './from-dir/from-dir.js';
export { renderSample } from './inspect.js';
export { packBestFitDecreasing, type SplitRowsOptions, splitRows } from './pack.js';
export {
  createPackedSplit,
  type PackedRow,
  type PackedSplit,
  stepMicroBatches,
  stepsPerEpoch,
} from './packed-split.js';
export { RecordError } from './record-error.js';
export {
  createFormatContext,
  type FormatContextOptions,
  type RecordSteps,
  type SampleCounts,
  type SampledRecord,
  sampleCounts,
  sampleRecords,
} from './record-samples.js';
export { DEFAULT_MAX_RECORD_BYTES, recordBytes, recordTooLarge } from './record-size.js';
export { type RowArrays, type RowDocument, rowArrays, sampleDocument, writeRow } from './row-layout.js';
export {
  type DatasetFiles,
  readRecords,
  resolveDataset,
  type SourceFile,
  type SourceRecord,
} from './sources/index.js';
export {
  findFimTokens,
  pretokenizedSample,
  tokenizeRecord,
  tokenizeSegments,
  trainedTargets,
} from './tokenize.js';
export { type Truncation, truncateSample } from './truncate.js';
export type {
  DataConfig,
  DataRecipe,
  DataStats,
  FormattedRecord,
  RecipeFormat,
  SplitStats,
  TextSegment,
  TokenizedSample,
} from './types.js';
