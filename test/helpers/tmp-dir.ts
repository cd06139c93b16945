/**
 * Temporary folders for tests: `<os tmpdir>/mft-<label>-XXXXXX`, outside the repository.
 *
 *   const root = fileTempDir('merge');         // one folder for the whole test file
 *   afterEach(removeTempDirs);                 // or: folders made by makeTempDir, removed after each test
 *   const dir = makeTempDir('run');
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

/** A fresh empty folder; removed by the next `removeTempDirs()`. */
export function makeTempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mft-${label}-`));
  made.push(dir);
  return dir;
}

/** Remove every folder `makeTempDir` has made so far (register as `afterAll` or `afterEach`). */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A fresh folder for a whole test file, removed after its tests; call at the file's top level. */
export function fileTempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mft-${label}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
