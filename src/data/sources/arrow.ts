/**
 * Arrow IPC files and streams (`.arrow`), including the shards a Hugging Face `save_to_disk`
 * folder holds. Record batches are read one at a time from a file stream, so memory holds one
 * batch (the `datasets` library writes batches of 1000 rows), never the whole table.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { RecordBatchReader } from 'apache-arrow';
import { displayPath, fail } from '../../util/index.js';
import { RecordError } from '../record-error.js';
import { countBytes } from './jsonl.js';
import { toPlainValue } from './plain-values.js';
import type { ReadOptions, SourceRecord } from './source-record.js';

/**
 * Whether the file starts like Arrow IPC: the file magic `ARROW1`, or a stream's first message
 * (continuation marker 0xFFFFFFFF, or a bare length in the pre-0.15 format) with a sane length.
 * Checked before reading so that a foreign file never makes the reader allocate a bogus size.
 */
function looksLikeArrow(path: string): boolean {
  const head = Buffer.alloc(8);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 8, 0);
  } finally {
    closeSync(fd);
  }
  if (n < 8) return false;
  if (head.toString('latin1', 0, 6) === 'ARROW1') return true;
  const first = head.readUInt32LE(0);
  const metaLength = first === 0xffffffff ? head.readUInt32LE(4) : first;
  return metaLength > 0 && metaLength < 1 << 26;
}

/** Stream the rows of an Arrow IPC file or stream as records; `where` is `file row N` (0-based). */
export async function* readArrow(path: string, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  const shown = displayPath(path);
  if (!looksLikeArrow(path)) fail(shown, 'not an Arrow IPC file or stream', 'check the file');
  const stream = createReadStream(path, { highWaterMark: 1 << 16 });
  let reader: Awaited<ReturnType<typeof RecordBatchReader.from>>;
  try {
    reader = await RecordBatchReader.from(countBytes(stream, opts.onProgress));
  } catch (e) {
    stream.destroy();
    fail(shown, `not an Arrow IPC file or stream (${(e as Error).message})`, 'check the file');
  }
  let row = 0;
  try {
    for await (const batch of reader) {
      const columns = batch.schema.fields.map((f, j) => ({ name: f.name, vector: batch.getChildAt(j)! }));
      for (let i = 0; i < batch.numRows; i++, row++) {
        const where = `${shown} row ${row}`;
        try {
          const value: Record<string, unknown> = {};
          for (const c of columns) value[c.name] = toPlainValue(c.name, c.vector.get(i));
          yield { ok: true, where, value };
        } catch (e) {
          if (!(e instanceof RecordError)) throw e;
          yield { ok: false, where, error: e };
        }
      }
    }
  } finally {
    stream.destroy();
  }
}
