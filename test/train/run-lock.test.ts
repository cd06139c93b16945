import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { prepareFreshRunDir } from '../../src/train/run-dir.js';
import { LOCK_FILE, lockRunDir } from '../../src/train/run-lock.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

afterEach(removeTempDirs);

const lockOf = (dir: string, pid: number, host = hostname()) =>
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, host, started: '2026-01-01T00:00:00Z' }));

describe('the run folder lock', () => {
  test('holds pid and host while taken, refuses a live holder, is gone after release', () => {
    const dir = join(makeTempDir('lock'), 'run');
    const lock = lockRunDir(dir);
    const info = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    expect(info).toMatchObject({ pid: process.pid, host: hostname() });
    // a fresh run's preparation keeps the lock of the run preparing it
    prepareFreshRunDir(dir);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);

    lockOf(dir, process.ppid); // a process that is running: the test runner's parent
    expect(() => lockRunDir(dir)).toThrow(
      new RegExp(
        `run: is in use by another mft train \\(pid ${process.ppid}, since 2026-01-01T00:00:00Z\\) \\(fix: wait for it`,
      ),
    );
  });

  test('a stale lock (its process is gone, as after kill -9) is taken over with a note', () => {
    const dir = makeTempDir('lock');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const pid = Number(gone.stdout);
    lockOf(dir, pid);
    const notes: string[] = [];
    const lock = lockRunDir(dir, (l) => notes.push(l));
    expect(notes).toEqual([
      expect.stringContaining(`taking over the stale lock of pid ${pid} (no longer running)`),
    ]);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  test("another host's lock cannot be checked: refused, naming the file to delete", () => {
    const dir = makeTempDir('lock');
    lockOf(dir, 1, 'elsewhere.example');
    expect(() => lockRunDir(dir)).toThrow(
      /is in use by mft train \(pid 1 on host elsewhere\.example.*delete .*\.mft-lock/,
    );
  });
});
