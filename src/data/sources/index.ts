/**
 * Data sources: every file format as one stream of `SourceRecord`s. This folder is the only place
 * in the data pipeline that reads data files.
 */
import { readArrow } from './arrow.js';
import { readCsv } from './csv.js';
import { readJsonArray } from './json-array.js';
import { readJsonl } from './jsonl.js';
import { readParquet } from './parquet.js';
import type { SourceFile } from './resolve.js';
import type { ReadOptions, SourceRecord } from './source-record.js';

export {
  type DatasetFiles,
  resolveDataset,
  type SourceFile,
  type SourceKind,
  sourceKind,
} from './resolve.js';
export type { ReadOptions, SourceRecord } from './source-record.js';

/**
 * Stream the records of one data file.
 * @example
 *   for await (const r of readRecords({path: 'data/train.jsonl', kind: 'jsonl'})) if (r.ok) use(r.value);
 */
export function readRecords(file: SourceFile, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  switch (file.kind) {
    case 'jsonl':
      return readJsonl(file.path, opts);
    case 'json':
      return readJsonArray(file.path, opts);
    case 'arrow':
      return readArrow(file.path, opts);
    case 'parquet':
      return readParquet(file.path, opts);
    case 'csv':
      return readCsv(file.path, opts);
  }
}
