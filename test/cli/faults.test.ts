/**
 * Faults of the machine around a run (a full disk, a read-only folder, a damaged gzip file):
 * each is exit 2 with the path and a fix, never a stack trace, and leaves no half-written file.
 * The disk cases mount a small or read-only tmpfs, which needs root; elsewhere they are skipped
 * with the reason.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const BASE = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
let dir = '';
const mounts: string[] = [];

/** Mount a tmpfs at a new folder under `dir`; null (with the reason) where that is not allowed. */
function tmpfs(name: string, options: string): string | null {
  const at = join(dir, name);
  mkdirSync(at, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', at], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  mounts.push(at);
  return at;
}

const canMount = (() => {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a tmpfs';
  const probe = spawnSync('mount', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? null : 'no mount command';
})();

function writeTask(name: string, dataFile = './data.jsonl'): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    [
      'task: text',
      `dataset: ${dataFile}`,
      `base_model: ${BASE}`,
      'backend: wasm',
      'sequence_len: 48',
      'micro_batch_size: 2',
      'max_steps: 4',
      'lora_r: 4',
      'val_set_size: 0',
      'save_steps: 2',
      'cache_dir: ./cache',
      '',
    ].join('\n'),
  );
  return path;
}

beforeAll(() => {
  dir = makeTempDir('faults');
  const lines = Array.from({ length: 24 }, (_, i) =>
    JSON.stringify({ text: `Once upon a time, Tom found a red ball number ${i} and played with it.` }),
  );
  writeFileSync(join(dir, 'data.jsonl'), `${lines.join('\n')}\n`);
});

afterAll(() => {
  for (const at of mounts) spawnSync('umount', [at]);
  removeTempDirs();
});

describe('faults around a run exit 2 with the path and a fix', () => {
  test.skipIf(canMount !== null)(
    `a full disk while writing a checkpoint ${canMount ? `(skipped: ${canMount})` : ''}`,
    () => {
      // 32 KiB: room for config.resolved.yaml and metrics, not for a checkpoint's adapter + optimizer
      const small = tmpfs('small-disk', 'size=32k')!;
      expect(small).not.toBeNull();
      const out = join(small, 'run');
      const r = runCli(['train', writeTask('enospc'), '--output-dir', out]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(
        /^mft: .*small-disk\/run\/.*: no space left on the device \(write\), ENOSPC \(fix: free space/m,
      );
      expect(r.stderr).not.toMatch(/\n\s+at /);
      // no half-written checkpoint or temporary left under the run
      const left = existsSync(out) ? readdirSync(out) : [];
      expect(left.filter((n) => n.startsWith('checkpoint-') || n.startsWith('.mft-tmp-'))).toEqual([]);
    },
    120_000,
  );

  test.skipIf(canMount !== null)(
    `a read-only output folder ${canMount ? `(skipped: ${canMount})` : ''}`,
    () => {
      const ro = tmpfs('read-only', 'ro,size=64k')!;
      const r = runCli(['train', writeTask('erofs'), '--output-dir', join(ro, 'run')]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(
        /^mft: .*read-only(\/run)?: the file system is read-only \(mkdir\), EROFS \(fix: write to a writable folder/m,
      );
      expect(r.stderr).not.toMatch(/\n\s+at /);
    },
    120_000,
  );

  test('an immutable (chattr +i) output folder: EPERM, which root cannot write past either', (ctx) => {
    const locked = join(dir, 'immutable');
    mkdirSync(locked);
    if (spawnSync('chattr', ['+i', locked]).status !== 0) ctx.skip();
    try {
      const r2 = runCli(['train', writeTask('eperm'), '--output-dir', join(locked, 'run')]);
      expect(r2.status, r2.stderr).toBe(2);
      expect(r2.stderr).toMatch(
        /^mft: .*immutable\/run: (operation not permitted|permission denied) \(mkdir\), E(PERM|ACCES)/m,
      );
    } finally {
      spawnSync('chattr', ['-i', locked]);
    }
  }, 120_000);

  test('a truncated .jsonl.gz names the file', () => {
    const gz = gzipSync(readFileOf(join(dir, 'data.jsonl')));
    writeFileSync(join(dir, 'cut.jsonl.gz'), gz.subarray(0, Math.floor(gz.length / 2)));
    const r = runCli(['data', 'inspect', writeTask('gz', './cut.jsonl.gz'), '-n', '1']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(
      /^mft: .*cut\.jsonl\.gz: the gzip data is damaged or cut short \(zlib: unexpected end of file\) \(fix: copy or compress the file again/m,
    );
  }, 60_000);
});

function readFileOf(path: string): Buffer {
  return spawnSync('cat', [path]).stdout as Buffer;
}
