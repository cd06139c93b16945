import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { readRecords, type SourceRecord, sourceKind } from '../../../src/data/sources/index.js';
import { displayPath, MftError } from '../../../src/util/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp-dir.js';

afterAll(removeTempDirs);
const dir = makeTempDir('csv');

function write(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

async function collect(path: string): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of readRecords({ path, kind: 'csv' })) out.push(r);
  return out;
}

const values = (rs: SourceRecord[]) => rs.map((r) => (r.ok ? r.value : r.error.message));

describe('CSV and TSV', () => {
  test('file names: .csv, .tsv and gzipped ones are CSV; .json.gz is a JSON array', () => {
    for (const name of ['a.csv', 'B.CSV', 'a.tsv', 'a.csv.gz', 'a.tsv.gz'])
      expect(sourceKind(name), name).toBe('csv');
    expect(sourceKind('a.json.gz')).toBe('json');
    expect(sourceKind('a.ndjson.gz')).toBe('jsonl');
    expect(sourceKind('a.csv.zip')).toBeNull();
  });

  test('quoted fields keep delimiters, "" quotes and line breaks; rows (blank ones too) are numbered as a spreadsheet does', async () => {
    for (const nl of ['\n', '\r\n']) {
      const text = [
        '\uFEFFinstruction,output',
        'Add 1 and 2,3',
        '',
        '"Say ""hi"", politely","Hi,' + nl + 'there"',
        'empty,',
        'x"y, "z"',
      ].join(nl);
      const path = write(`quoted-${nl.length}.csv`, `${text}${nl}`);
      const rs = await collect(path);
      expect(values(rs)).toEqual([
        { instruction: 'Add 1 and 2', output: '3' },
        { instruction: 'Say "hi", politely', output: `Hi,${nl}there` },
        { instruction: 'empty', output: '' },
        { instruction: 'x"y', output: ' "z"' }, // a quote not opening a field is text, as in Python's csv
      ]);
      expect(rs.map((r) => r.where)).toEqual([2, 4, 5, 6].map((n) => `${displayPath(path)} row ${n}`));
    }
  });

  test('.tsv splits on tabs; .csv.gz reads like the plain file', async () => {
    const tsv = write('a.tsv', 'text\tlang\nx, y\ten\n');
    expect(values(await collect(tsv))).toEqual([{ text: 'x, y', lang: 'en' }]);
    const csv = 'text,n\nhello,1\nworld,2\n';
    const gz = write('a.csv.gz', gzipSync(Buffer.from(csv)));
    expect(values(await collect(gz))).toEqual(values(await collect(write('a.csv', csv))));
  });

  test('.json.gz is gunzipped like .jsonl.gz', async () => {
    const path = write('a.json.gz', gzipSync(Buffer.from('[{"text": "a"},\n {"text": "b"}]')));
    const rs: SourceRecord[] = [];
    for await (const r of readRecords({ path, kind: sourceKind(path)! })) rs.push(r);
    expect(values(rs)).toEqual([{ text: 'a' }, { text: 'b' }]);
  });

  test('a row with the wrong number of fields is one record error; the rows after it still read', async () => {
    const path = write('ragged.csv', 'a,b\n1,2\n3,4,5\n6,7\n');
    const rs = await collect(path);
    expect(rs.map((r) => r.ok)).toEqual([true, false, true]);
    const bad = rs[1]!;
    expect(bad.where).toBe(`${displayPath(path)} row 3`);
    expect(bad.ok ? '' : `${bad.error.message}; ${bad.error.fix}`).toBe(
      'has 3 fields, the header has 2; quote fields that contain the delimiter (a comma) or line breaks',
    );
  });

  test('a quote left open, invalid UTF-8, a bad header or an empty file stop with the file named', async () => {
    const cases: [string, string | Buffer, string][] = [
      ['open-quote.csv', 'a,b\n1,"never closed\n2,3\n', 'row 2: Quote Not Closed'],
      [
        'utf8.csv',
        Buffer.concat([Buffer.from('a\nok\n'), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]),
        ':3: invalid UTF-8 (byte 7 of the file)',
      ],
      ['dup.csv', 'text,text\n1,2\n', 'row 1: column name "text" appears twice'],
      ['unnamed.csv', 'text,\n1,2\n', 'row 1: column 2 has no name'],
      ['empty.csv', '\n\n', 'is empty: no header row'],
    ];
    for (const [name, content, message] of cases) {
      const path = write(name, content);
      const err = await collect(path).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(MftError);
      expect((err as MftError).message, name).toContain(displayPath(path));
      expect((err as MftError).message, name).toContain(message);
    }
  });
});
