/**
 * A directory written as a unit: filled under a temporary sibling name, every file fsynced, then
 * renamed into place. A kill at any moment leaves either the previous directory or the complete new
 * one under the final name, never a half-written one.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncPath } from '../util/index.js';

/** Prefix of every temporary name in a run directory (removed when a run starts or resumes). */
export const TEMP_PREFIX = '.mft-tmp-';

/** Remove a directory so that a kill midway never leaves it half-deleted under its name. */
export function removeDirAtomically(dir: string): void {
  if (!existsSync(dir)) return;
  const doomed = join(dirname(dir), `${TEMP_PREFIX}deleted-${basename(dir)}-${process.pid}`);
  rmSync(doomed, { recursive: true, force: true });
  renameSync(dir, doomed);
  rmSync(doomed, { recursive: true, force: true });
}

/**
 * Create (or replace) directory `dir` with the files `fill` writes into the temporary directory it
 * is given.
 * @param dir final path, e.g. `<run>/checkpoint-50`
 * @param fill writes the files (flat: no sub-directories) into its argument
 * @example writeDirAtomically(join(runDir, 'adapter'), (tmp) => saveAdapter(tmp, adapter));
 */
export function writeDirAtomically(dir: string, fill: (tmpDir: string) => void): void {
  const parent = dirname(dir);
  const tmp = join(parent, `${TEMP_PREFIX}${basename(dir)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
    // every file durable before the directory gets its final name
    for (const name of readdirSync(tmp)) fsyncPath(join(tmp, name));
    fsyncPath(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  removeDirAtomically(dir);
  renameSync(tmp, dir);
  fsyncPath(parent);
}
