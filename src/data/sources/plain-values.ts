/**
 * Arrow and Parquet values as plain JS values: lists become arrays, structs objects, dictionary
 * strings strings, and 64-bit integers (BigInt in JS) numbers, when they are safe integers.
 */
import { Vector } from 'apache-arrow';
import { RecordError } from '../record-error.js';

/**
 * Convert one cell of column `column` to a plain JS value.
 * @throws RecordError when a 64-bit integer does not fit a JS number exactly
 */
export function toPlainValue(column: string, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) {
      throw new RecordError(
        `${column}: integer ${value} is too large for a JS number (beyond 2^53 - 1)`,
        'store the column as a string or a smaller integer type',
      );
    }
    return n;
  }
  if (typeof value !== 'object') return value;
  if (value instanceof Vector) return Array.from(value, (v) => toPlainValue(column, v));
  if (Array.isArray(value)) return value.map((v) => toPlainValue(column, v));
  if (ArrayBuffer.isView(value)) {
    // A typed array: numeric list cells from Parquet, raw bytes of a binary column.
    if (value instanceof Uint8Array) return value;
    return Array.from(value as unknown as ArrayLike<number | bigint>, (v) => toPlainValue(column, v));
  }
  if (value instanceof Date) return value;
  // An Arrow StructRow (has toJSON) or a Parquet struct (a plain object).
  const obj =
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
      ? ((value as { toJSON(): unknown }).toJSON() as Record<string, unknown>)
      : (value as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = toPlainValue(column, v);
  return out;
}
