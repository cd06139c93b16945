/**
 * CSV and TSV files (`.csv`, `.tsv`, also gzipped): the first row names the columns, each later
 * row is one record of strings, as written (no type guessing: recipes format text). Parsed by
 * csv-parse (RFC 4180: a quoted field may hold delimiters, `""` quotes and line breaks), streamed;
 * fields that do not start with a quote are taken as written, quotes included, as Python's csv does.
 *
 * `where` is `file row N`, numbered as a spreadsheet shows them: the header is row 1, blank lines
 * count as rows but give no record. A row with another number of fields than the header is one
 * record error; a quote left open, invalid UTF-8 or a bad header stops the file with an error.
 */
import { Readable } from 'node:stream';
import { CsvError, parse } from 'csv-parse';
import { displayPath, fail } from '../../util/index.js';
import { RecordError } from '../record-error.js';
import { fileChunks, firstInvalidUtf8 } from './jsonl.js';
import type { ReadOptions, SourceRecord } from './source-record.js';

const LF = 0x0a;

/** The file's text, decoded strictly chunk by chunk (a character split between chunks is kept whole). */
async function* utf8Text(chunks: AsyncIterable<Buffer>, shown: string): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0;
  let lines = 0;
  for await (const chunk of chunks) {
    try {
      yield decoder.decode(chunk, { stream: true });
    } catch {
      const at = Math.max(0, firstInvalidUtf8(chunk));
      const line = lines + chunk.subarray(0, at).filter((b) => b === LF).length + 1;
      fail(
        `${shown}:${line}`,
        `invalid UTF-8 (byte ${offset + at + 1} of the file)`,
        'save the file as UTF-8',
      );
    }
    offset += chunk.length;
    lines += chunk.filter((b) => b === LF).length;
  }
  try {
    yield decoder.decode();
  } catch {
    fail(`${shown}:${lines + 1}`, 'invalid UTF-8 at the end of the file', 'save the file as UTF-8');
  }
}

function checkHeader(header: string[], shown: string): void {
  const seen = new Set<string>();
  header.forEach((name, i) => {
    if (name.trim() === '')
      fail(`${shown} row 1`, `column ${i + 1} has no name`, 'name every column in the first row');
    if (seen.has(name))
      fail(`${shown} row 1`, `column name "${name}" appears twice`, 'give each column its own name');
    seen.add(name);
  });
}

/** Stream the rows of a CSV (or, for `.tsv` names, tab-separated) file as records. */
export async function* readCsv(path: string, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  const shown = displayPath(path);
  const tab = /\.tsv(\.gz)?$/i.test(path);
  // relax_quotes: a quote inside an unquoted field is text (`x"y`, ` "z"`), as Python's csv reads it
  const parser = parse({
    delimiter: tab ? '\t' : ',',
    bom: true,
    relax_column_count: true,
    relax_quotes: true,
  });
  const text = Readable.from(utf8Text(fileChunks(path, opts), shown));
  text.on('error', (e) => parser.destroy(e));
  text.pipe(parser);

  let header: string[] | null = null;
  let row = 0;
  try {
    for await (const fields of parser as AsyncIterable<string[]>) {
      row += 1;
      if (fields.length === 1 && fields[0] === '') continue; // a blank line
      if (header === null) {
        checkHeader(fields, shown);
        header = fields;
        continue;
      }
      const where = `${shown} row ${row}`;
      if (fields.length !== header.length) {
        const error = new RecordError(
          `has ${fields.length} fields, the header has ${header.length}`,
          `quote fields that contain the delimiter (${tab ? 'a tab' : 'a comma'}) or line breaks`,
        );
        yield { ok: false, where, error };
        continue;
      }
      yield { ok: true, where, value: Object.fromEntries(header.map((name, i) => [name, fields[i]!])) };
    }
  } catch (e) {
    if (e instanceof CsvError) {
      // csv-parse names the line where it gave up; the row it was reading is the useful place
      const fix =
        'check the quotes from that row on: close each quoted field, write a quote inside one as ""';
      fail(`${shown} row ${row + 1}`, e.message, fix);
    }
    throw e;
  } finally {
    text.destroy();
  }
  if (header === null) fail(shown, 'is empty: no header row', 'write the column names in the first row');
}
