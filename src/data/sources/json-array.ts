/**
 * `.json` files: a top-level array of records, streamed element by element.
 *
 * The scanner works on raw bytes: every structural character of JSON (`[ ] { } " \ ,` and
 * whitespace) is ASCII and never occurs inside a multi-byte UTF-8 sequence, so element boundaries
 * can be found without decoding. Each element's bytes are then decoded strictly and parsed alone:
 * a bad element is one record error (at the line it starts on) and the rest of the file still
 * reads; only one element is held in memory at a time. A `.json` file that starts with `{` is read
 * as JSON Lines, as the `datasets` library does.
 */

import { displayPath } from '../../util/index.js';
import { RecordError } from '../record-error.js';
import { recordTooLarge } from '../record-size.js';
import { decodeUtf8Line, fileChunks, readJsonl } from './jsonl.js';
import { isRecord, type ReadOptions, type SourceRecord } from './source-record.js';

const LF = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

function elementRecord(where: string, bytes: Uint8Array): SourceRecord {
  const text = decodeUtf8Line(bytes);
  if (text instanceof RecordError) return { ok: false, where, error: text };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, where, error: new RecordError(`invalid JSON: ${(e as Error).message}`) };
  }
  if (!isRecord(value)) {
    const got = Array.isArray(value) ? 'an array' : text.slice(0, 40);
    return { ok: false, where, error: new RecordError(`expected a JSON object, got ${got}`) };
  }
  return { ok: true, where, value };
}

/** Stream the records of a `.json` file (an array of objects, or JSON Lines). */
export async function* readJsonArray(path: string, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  const shown = displayPath(path);
  type Phase = 'start' | 'between' | 'element' | 'done';
  let phase = 'start' as Phase;
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let elementLine = 0;
  let parts: Uint8Array[] = [];
  let partBytes = 0; // bytes of the element so far; past max its parts are dropped, not kept
  const max = opts.maxRecordBytes ?? Number.POSITIVE_INFINITY;

  const fileError = (message: string): SourceRecord => ({
    ok: false,
    where: `${shown}:${line}`,
    error: new RecordError(message, 'a .json file holds one array of objects: [{...}, {...}]'),
  });

  for await (const chunk of fileChunks(path, opts)) {
    let segStart = phase === 'element' ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (phase === 'start') {
        if (isSpace(b)) {
          if (b === LF) line += 1;
          continue;
        }
        if (b === OPEN_ARRAY) {
          phase = 'between';
          continue;
        }
        if (b === OPEN_OBJECT) {
          yield* readJsonl(path, opts);
          return;
        }
        yield fileError(`expected "[" at the start of the file, got "${String.fromCharCode(b)}"`);
        return;
      }
      if (phase === 'done') {
        if (b === LF) line += 1;
        else if (!isSpace(b)) {
          yield fileError('unexpected text after the closing "]"');
          return;
        }
        continue;
      }
      if (phase === 'between') {
        if (b === LF) line += 1;
        if (isSpace(b) || b === COMMA) continue;
        if (b === CLOSE_ARRAY) {
          phase = 'done';
          continue;
        }
        phase = 'element';
        elementLine = line;
        segStart = i;
        depth = 0;
        inString = false;
        escaped = false;
      }
      // phase === 'element': find where this element ends.
      let end = -1; // exclusive end of the element within this chunk
      let reprocess = false; // the byte at `end` belongs to the array, not the element
      if (inString) {
        if (escaped) escaped = false;
        else if (b === BACKSLASH) escaped = true;
        else if (b === QUOTE) {
          inString = false;
          if (depth === 0) end = i + 1;
        }
      } else if (b === QUOTE) {
        inString = true;
      } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
        depth += 1;
      } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        if (depth === 0) {
          end = i; // `]` closing the array right after a bare value
          reprocess = true;
        } else {
          depth -= 1;
          if (depth === 0) end = i + 1;
        }
      } else if (depth === 0 && (b === COMMA || isSpace(b))) {
        end = i; // a bare value (number, true, null) ends here
        reprocess = true;
      }
      if (b === LF) line += reprocess ? 0 : 1;
      if (end >= 0) {
        const size = partBytes + end - segStart;
        parts.push(chunk.subarray(segStart, end));
        const bytes = size > max ? null : parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        parts = [];
        partBytes = 0;
        phase = 'between';
        segStart = -1;
        const where = `${shown}:${elementLine}`;
        yield bytes ? elementRecord(where, bytes) : { ok: false, where, error: recordTooLarge(size, max) };
        if (reprocess) i -= 1;
      }
    }
    if (phase === 'element') {
      partBytes += chunk.length - segStart;
      if (partBytes > max) parts = [];
      else parts.push(chunk.subarray(segStart));
    }
  }
  if (phase === 'element') {
    yield {
      ok: false,
      where: `${shown}:${elementLine}`,
      error: new RecordError('the file ends inside this record', 'close every { and [ of the record'),
    };
  } else if (phase === 'between') {
    yield fileError('the file ends before the closing "]"');
  }
}
