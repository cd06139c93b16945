/**
 * JSON Lines (`.jsonl`, `.jsonl.gz`): one JSON object per line, streamed.
 *
 * Lines are cut from raw bytes and decoded one by one with a strict UTF-8 decoder, so invalid UTF-8
 * is reported at its line instead of being silently replaced by U+FFFD, and only one line is held in
 * memory at a time. Blank lines are skipped (they still count in line numbers).
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { displayPath, MftError } from '../../util/index.js';
import { RecordError } from '../record-error.js';
import { recordTooLarge } from '../record-size.js';
import { isRecord, type ReadOptions, type SourceRecord } from './source-record.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Byte offset of the first byte that is not valid UTF-8, or -1 (RFC 3629: no overlongs, no surrogates). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return i + k;
    }
    i += need + 1;
  }
  return -1;
}

/** Decode one line strictly; on invalid UTF-8 say which byte and where. */
export function decodeUtf8Line(bytes: Uint8Array): string | RecordError {
  try {
    return utf8.decode(bytes);
  } catch {
    const at = Math.max(0, firstInvalidUtf8(bytes));
    const b = bytes[at] ?? 0;
    return new RecordError(
      `invalid UTF-8 (byte 0x${b.toString(16).padStart(2, '0')} at byte ${at + 1} of the line)`,
      'save the file as UTF-8',
    );
  }
}

/** Parse one line of JSON Lines into a record or a record error. */
export function parseJsonLine(text: string): Record<string, unknown> | RecordError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return new RecordError(`invalid JSON: ${(e as Error).message}`, 'write one JSON object per line');
  }
  if (!isRecord(value)) {
    return new RecordError(
      `expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value).slice(0, 40)}`,
      'write one JSON object per line',
    );
  }
  return value;
}

/**
 * Split a byte stream into lines (without the `\n` / `\r\n`), holding one line at a time. A line
 * longer than `maxLineBytes` is never assembled: its bytes are counted and dropped, and it comes
 * out as `line: null` with its length.
 */
export async function* byteLines(
  chunks: AsyncIterable<Buffer>,
  maxLineBytes = Number.POSITIVE_INFINITY,
): AsyncGenerator<{ line: Uint8Array | null; lineNo: number; bytes: number }> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let over = false; // the current line passed maxLineBytes: count, do not keep
  let lineNo = 0;
  const take = (tail: Buffer): { line: Uint8Array | null; bytes: number } => {
    const bytes = pendingBytes + tail.length;
    let line: Uint8Array | null = null;
    if (!over && bytes <= maxLineBytes) {
      line = pending.length > 0 ? Buffer.concat([...pending, tail]) : tail;
      if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
    }
    pending = [];
    pendingBytes = 0;
    over = false;
    return { line, bytes };
  };
  for await (const chunk of chunks) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      lineNo += 1;
      yield { ...take(chunk.subarray(start, nl)), lineNo };
      start = nl + 1;
    }
    if (start < chunk.length) {
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLineBytes) over = true;
      if (over) pending = [];
      else pending.push(chunk.subarray(start));
    }
  }
  if (pendingBytes > 0) yield { ...take(Buffer.alloc(0)), lineNo: lineNo + 1 };
}

/** Pass chunks through, reporting the running byte count (never a second reader on the stream). */
export async function* countBytes(
  chunks: AsyncIterable<Buffer>,
  report?: (bytesRead: number) => void,
): AsyncGenerator<Buffer> {
  let read = 0;
  for await (const c of chunks) {
    read += c.length;
    report?.(read);
    yield c;
  }
}

/** A file's bytes as a stream, gunzipped when the name ends in `.gz`; reports bytes read from disk. */
export function fileChunks(path: string, opts: ReadOptions = {}): AsyncIterable<Buffer> {
  const raw = countBytes(createReadStream(path, { highWaterMark: 1 << 16 }), opts.onProgress);
  return path.endsWith('.gz') ? gunzipped(path, Readable.from(raw).pipe(createGunzip())) : raw;
}

/** A gunzip stream whose zlib errors (a cut-short or damaged file) name the file. */
async function* gunzipped(path: string, stream: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* stream;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (!code.startsWith('Z_')) throw e;
    throw new MftError({
      where: displayPath(path),
      message: `the gzip data is damaged or cut short (zlib: ${(e as Error).message})`,
      fix: 'copy or compress the file again (gzip -t checks it)',
    });
  }
}

/** Stream the records of a JSON Lines file. */
export async function* readJsonl(path: string, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  const shown = displayPath(path);
  const max = opts.maxRecordBytes ?? Number.POSITIVE_INFINITY;
  for await (const { line, lineNo, bytes } of byteLines(fileChunks(path, opts), max)) {
    const where = `${shown}:${lineNo}`;
    if (line === null) {
      yield { ok: false, where, error: recordTooLarge(bytes, max) };
      continue;
    }
    const text = decodeUtf8Line(line);
    if (text instanceof RecordError) {
      yield { ok: false, where, error: text };
      continue;
    }
    if (text.trim() === '') continue;
    const value = parseJsonLine(text);
    if (value instanceof RecordError) yield { ok: false, where, error: value };
    else yield { ok: true, where, value };
  }
}
