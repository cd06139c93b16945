/**
 * `max_record_bytes`: one huge record (a 50 MB line) would be read into one string and tokenized
 * whole, taking gigabytes and minutes. A JSON Lines line or a JSON array element longer than the
 * bound is never assembled (the reader counts its bytes and drops them), and an Arrow, Parquet or
 * CSV record whose values are larger is not formatted or tokenized; either is a bad record, stopped
 * or skipped as `on_bad_record` says. */
import { formatBytes } from '../util/index.js';
import { RecordError } from './record-error.js';

/** The default bound: far above a normal record (a source file, a chat, a long article). */
export const DEFAULT_MAX_RECORD_BYTES = 8 * 2 ** 20;

/** The error of a record of `bytes` (at least: reading stopped once past the bound) over `max`. */
export function recordTooLarge(bytes: number, max: number): RecordError {
  return new RecordError(
    `the record is ${formatBytes(bytes)} (${bytes} bytes), over max_record_bytes (${max})`,
    'split it into smaller records, or raise max_record_bytes',
  );
}

/**
 * Bytes of a record's values (UTF-8 of strings, 8 per number, nested arrays and objects summed),
 * stopping as soon as the sum passes `max`.
 */
export function recordBytes(value: unknown, max = Number.POSITIVE_INFINITY): number {
  let total = 0;
  const visit = (v: unknown): void => {
    if (total > max) return;
    if (typeof v === 'string') total += Buffer.byteLength(v);
    else if (typeof v === 'number' || typeof v === 'bigint') total += 8;
    else if (Array.isArray(v) || ArrayBuffer.isView(v)) {
      if (ArrayBuffer.isView(v)) total += v.byteLength;
      else for (const x of v) visit(x);
    } else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) visit(x);
  };
  visit(value);
  return total;
}
