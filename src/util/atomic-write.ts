import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { asUserFileError } from './system-error.js';

/** A temporary name beside `path` (same folder, so the final rename is atomic). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.mft-tmp-${basename(path)}-${process.pid}-${Date.now().toString(36)}`);
}

// Bytes per write call (one call cannot move more than 2 GiB).
const IO_CHUNK = 2 ** 30;

/**
 * Write a file atomically: write a temporary sibling, fsync it, rename it over `path`.
 * A kill at any moment leaves either the old file or the new one, never half of one.
 * @param data the content, or a list of parts written one after the other (no concatenated copy)
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const tmp = tempPathFor(path);
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    throw asUserFileError(e, path) ?? e;
  }
  try {
    const parts =
      typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    for (const bytes of parts) {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(IO_CHUNK, bytes.length - off));
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    // a full disk names the file being written (write and fsync errors carry no path)
    throw asUserFileError(e, path) ?? e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** fsync a file, or a directory so a rename inside it is durable. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
