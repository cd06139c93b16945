/**
 * Parquet files (`.parquet`; snappy, zstd, gzip, brotli, lz4 pages) read with hyparquet one row
 * group at a time, so memory holds one row group's rows, never the whole file.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { displayPath, fail } from '../../util/index.js';
import { RecordError } from '../record-error.js';
import { toPlainValue } from './plain-values.js';
import type { ReadOptions, SourceRecord } from './source-record.js';

/** Stream the rows of a Parquet file as records; `where` is `file row N` (0-based). */
export async function* readParquet(path: string, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  const shown = displayPath(path);
  const file = await asyncBufferFromFile(path);
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    fail(shown, `not a Parquet file (${(e as Error).message})`, 'check the file');
  }
  let rowStart = 0;
  let bytesDone = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({
      file,
      metadata,
      rowStart,
      rowEnd,
      compressors,
      rowFormat: 'object',
    });
    bytesDone += Number(group.total_compressed_size ?? group.total_byte_size);
    opts.onProgress?.(Math.min(bytesDone, file.byteLength));
    for (let i = 0; i < rows.length; i++) {
      const where = `${shown} row ${rowStart + i}`;
      try {
        const value: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(rows[i]!)) value[k] = toPlainValue(k, v);
        yield { ok: true, where, value };
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        yield { ok: false, where, error: e };
      }
    }
    rowStart = rowEnd;
  }
  opts.onProgress?.(file.byteLength); // footer and page headers included
}
