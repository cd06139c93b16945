/**
 * `on_bad_record`: `error` stops at the first unusable record with its place, field and fix;
 * `skip` leaves it out, counts it and keeps the first few places for the report.
 */
import { MftError } from '../util/index.js';
import type { RecordError } from './record-error.js';

const KEPT_EXAMPLES = 5;

export class BadRecords {
  count = 0;
  /** `where: message` of the first few skipped records. */
  readonly examples: string[] = [];

  constructor(private readonly policy: 'error' | 'skip') {}

  /** Handle one bad record: throws an MftError under `error`, records it under `skip`. */
  report(where: string, error: RecordError): void {
    if (this.policy === 'error') {
      const fix = error.fix
        ? `${error.fix}; or set on_bad_record: skip`
        : 'fix the record, or set on_bad_record: skip';
      throw new MftError({ where, message: error.message, fix: `${fix} to leave out such records` });
    }
    this.count += 1;
    if (this.examples.length < KEPT_EXAMPLES) this.examples.push(`${where}: ${error.message}`);
  }
}
