/**
 * max_record_bytes: a record over the bound is a bad record named by its place, never assembled
 * whole from a JSON Lines file and never tokenized (stopped or skipped per on_bad_record).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tableFromArrays, tableToIPC } from 'apache-arrow';
import { describe, expect, test } from 'vitest';
import { BadRecords } from '../../src/data/bad-records.js';
import { type RecordSteps, sampleCounts, sampleRecords } from '../../src/data/record-samples.js';
import { byteLines } from '../../src/data/sources/jsonl.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const dir = fileTempDir('record-size');
const BASE = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');

async function* chunksOf(text: string, size: number): AsyncGenerator<Buffer> {
  const b = Buffer.from(text);
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function lines(text: string, max: number, chunk = 3) {
  const out: (string | number)[] = [];
  for await (const l of byteLines(chunksOf(text, chunk), max)) {
    out.push(l.line === null ? l.bytes : Buffer.from(l.line).toString());
  }
  return out;
}

/** Steps that count what reaches formatting and tokenizing. */
function countingSteps(seen: string[]): RecordSteps {
  return {
    format: (value) => {
      seen.push(String(value.text).slice(0, 8));
      return { kind: 'segments', segments: [] } as never;
    },
    tokenize: () => ({ ids: [], labels: [] }) as never,
    cut: (s) => [s],
  };
}

describe('max_record_bytes', () => {
  test('the line reader drops a line over the bound unassembled, with its length, whatever the chunking', async () => {
    const text = 'abcdefghij\nabcdefghijk\r\nxy\n\nabcdefghijklmnop';
    for (const chunk of [1, 3, 7, 100]) {
      expect(await lines(text, 10, chunk), `chunks of ${chunk}`).toEqual(['abcdefghij', 12, 'xy', '', 16]);
    }
    expect(await lines(text, Number.POSITIVE_INFINITY)).toEqual([
      'abcdefghij',
      'abcdefghijk',
      'xy',
      '',
      'abcdefghijklmnop',
    ]);
  });

  test('an Arrow record over the bound is a bad record before it is formatted', async () => {
    const path = join(dir, 'big.arrow');
    writeFileSync(
      path,
      tableToIPC(tableFromArrays({ text: ['small one', 'x'.repeat(5000), 'small two'] }), 'file'),
    );
    const seen: string[] = [];
    const read = { maxRecordBytes: 1000 };
    const run = async (policy: 'error' | 'skip') => {
      const bad = new BadRecords(policy);
      for await (const _ of sampleRecords(
        { path, kind: 'arrow' },
        countingSteps(seen),
        bad,
        sampleCounts(),
        read,
      ));
      return bad;
    };
    await expect(run('error')).rejects.toThrow(
      /big\.arrow row 1: the record is 4\.9 KiB \(5000 bytes\), over max_record_bytes \(1000\) \(fix: split it into smaller records, or raise max_record_bytes; or set on_bad_record: skip/,
    );
    seen.length = 0;
    const bad = await run('skip');
    expect(bad.count).toBe(1);
    expect(seen).toEqual(['small on', 'small tw']);
  });

  test('a 50 MB JSON Lines record: mft data inspect names file:line quickly, with bounded memory', () => {
    const data = join(dir, 'huge.jsonl');
    const fd = openSync(data, 'w');
    writeSync(fd, `${JSON.stringify({ text: 'Once upon a time there was a cat.' })}\n`);
    writeSync(fd, `${JSON.stringify({ text: 'The cat sat on a mat.' })}\n`);
    const block = 'a'.repeat(1 << 20);
    writeSync(fd, '{"text": "');
    for (let i = 0; i < 50; i++) writeSync(fd, block);
    writeSync(fd, '"}\n');
    writeSync(fd, `${JSON.stringify({ text: 'Lily liked the sun.' })}\n`);
    closeSync(fd);
    const task = (policy: string) => {
      const path = join(dir, `task-${policy}.yaml`);
      writeFileSync(
        path,
        `task: text\ndataset: ./huge.jsonl\nbase_model: ${BASE}\nval_set_size: 0\non_bad_record: ${policy}\ncache_dir: ./cache-${policy}\n`,
      );
      return path;
    };
    // the child reports its peak resident set on exit
    const maxRss =
      'data:text/javascript,process.on("exit",()=>process.stderr.write("max_rss_kib "+process.resourceUsage().maxRSS+"\\n"))';
    const run = (policy: string) => {
      const t0 = Date.now();
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          '--import',
          maxRss,
          `${REPO_ROOT}test/cli/cli-entry.ts`,
          'data',
          'inspect',
          task(policy),
          '-n',
          '1',
        ],
        { cwd: REPO_ROOT, encoding: 'utf8' },
      );
      const rssKib = Number(/max_rss_kib (\d+)/.exec(r.stderr)?.[1]);
      return { ...r, seconds: (Date.now() - t0) / 1000, rssMib: rssKib / 1024 };
    };

    const stopped = run('error');
    expect(stopped.status, stopped.stderr).toBe(2);
    expect(stopped.stderr).toMatch(
      /huge\.jsonl:3: the record is 50 MiB \(52428812 bytes\), over max_record_bytes \(8388608\) \(fix: split it into smaller records, or raise max_record_bytes; or set on_bad_record: skip to leave out such records\)/,
    );
    expect(stopped.rssMib).toBeLessThan(1024);
    expect(stopped.seconds).toBeLessThan(60);

    const skipped = run('skip');
    expect(skipped.status, skipped.stderr).toBe(0);
    expect(skipped.stderr).toMatch(/huge\.jsonl:3: the record is 50 MiB/);
    expect(skipped.rssMib).toBeLessThan(1024);
  });
});

test('a JSON array element over the bound is reported at its line without being assembled', async () => {
  const path = join(dir, 'big.json');
  writeFileSync(
    path,
    `[\n{"text": "small one"},\n{"text": "${'y'.repeat(5000)}"},\n{"text": "small two"}\n]\n`,
  );
  const seen: string[] = [];
  const bad = new BadRecords('skip');
  for await (const _ of sampleRecords({ path, kind: 'json' }, countingSteps(seen), bad, sampleCounts(), {
    maxRecordBytes: 1000,
  }));
  expect(bad.examples).toEqual([
    expect.stringMatching(
      /big\.json:3: the record is 4\.9 KiB \(5012 bytes\), over max_record_bytes \(1000\)/,
    ),
  ]);
  expect(seen).toEqual(['small on', 'small tw']);
});
