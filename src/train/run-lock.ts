/**
 * One mft process per run folder: `mft train` holds `<run>/.mft-lock` (pid, host, start time) for
 * the length of the run, so a second `mft train` or `--resume` on the same folder exits 2 instead of
 * interleaving its metrics and checkpoints with the first. A lock whose process is gone (killed
 * with -9, the machine rebooted) on this host is stale and taken over; one from another host
 * cannot be checked and is refused, naming the file to delete.
 */

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { displayPath, MftError } from '../util/index.js';

export const LOCK_FILE = '.mft-lock';

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

/** Whether process `pid` runs on this machine (EPERM: it exists but belongs to another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(path: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>;
    return typeof v.pid === 'number' && typeof v.host === 'string'
      ? { pid: v.pid, host: v.host, started: String(v.started ?? '?') }
      : null;
  } catch {
    return null; // half-written or unreadable: a lock nobody can be holding properly
  }
}

export interface RunLock {
  /** Remove the lock (idempotent; also done when the process exits). */
  release(): void;
}

/**
 * Take the run folder's lock (creating the folder), or throw an MftError naming who holds it.
 * @param note told when a stale lock is taken over
 * @example const lock = lockRunDir(runDir); try { ... } finally { lock.release(); }
 */
export function lockRunDir(runDir: string, note: (line: string) => void = () => {}): RunLock {
  mkdirSync(runDir, { recursive: true });
  const path = join(runDir, LOCK_FILE);
  const mine: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      // 'wx': created only when absent, atomically, so two runs never both get it
      writeFileSync(path, `${JSON.stringify(mine)}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
    }
    const held = readLock(path);
    if (held && held.host !== mine.host) {
      throw new MftError({
        where: displayPath(runDir),
        message: `is in use by mft train (pid ${held.pid} on host ${held.host}, since ${held.started})`,
        fix: `wait for that run to end; if it is no longer running, delete ${displayPath(path)}`,
      });
    }
    if (held && held.pid !== process.pid && alive(held.pid)) {
      throw new MftError({
        where: displayPath(runDir),
        message: `is in use by another mft train (pid ${held.pid}, since ${held.started})`,
        fix: 'wait for it to end or stop it (Ctrl-C saves a checkpoint), or use another --output-dir',
      });
    }
    note(
      `taking over the stale lock of ${held ? `pid ${held.pid} (no longer running)` : 'a run'} in ${displayPath(runDir)}`,
    );
    rmSync(path, { force: true });
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    if (readLock(path)?.pid === process.pid) rmSync(path, { force: true });
  };
  process.on('exit', release);
  return { release };
}
