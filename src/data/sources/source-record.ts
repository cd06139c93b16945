/**
 * What every source reader yields: one record (a plain JS object) or one unusable record, with
 * the place it came from (`data/train.jsonl:3`, `data.arrow row 17`).
 */
import type { RecordError } from '../record-error.js';

export type SourceRecord =
  | { ok: true; where: string; value: Record<string, unknown> }
  | { ok: false; where: string; error: RecordError };

/** Options every reader takes. */
export interface ReadOptions {
  /** Called with the number of bytes of the file consumed so far (for a progress bar). */
  onProgress?: (bytesRead: number) => void;
  /** A line-based reader drops a line longer than this unread and yields a record error (max_record_bytes). */
  maxRecordBytes?: number;
}

/** Whether a parsed JSON value is a record (a plain object, not an array or a scalar). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
