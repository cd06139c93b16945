/**
 * A record that cannot be used. Formatting and tokenization throw `RecordError` without knowing
 * where the record came from; the dataset builder adds the place (`data/train.jsonl:3`) and either
 * stops with an `MftError` or skips the record (`on_bad_record`).
 */
export class RecordError extends Error {
  /** `field: what is wrong` (the field first when there is one). */
  constructor(
    message: string,
    readonly fix?: string,
  ) {
    super(message);
    this.name = 'RecordError';
  }
}

/** A short description of a value for error messages: `42`, `"abc"`, `an array`, `null`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'bigint') return `${value}`;
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
