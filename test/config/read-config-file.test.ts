import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { MAX_CONFIG_FILE_BYTES, readConfigFile } from '../../src/config/read-config-file.js';
import { formatProblem } from '../../src/util/index.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const dir = fileTempDir('read-config');

/** The text, or the problem as mft prints it. */
function read(name: string, kind: 'task file' | 'recipe' = 'task file'): string {
  const r = readConfigFile(join(dir, name), { shown: name, kind });
  return 'text' in r ? r.text : formatProblem(r.problem);
}

describe('readConfigFile', () => {
  test('UTF-8 text is read, a BOM dropped', () => {
    writeFileSync(
      join(dir, 'bom.yaml'),
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('a: é\n')]),
    );
    expect(read('bom.yaml')).toBe('a: é\n');
  });

  test('a missing file, a link to nowhere and a folder without .yaml files', () => {
    expect(read('missing.yaml')).toBe('missing.yaml: task file not found (fix: check the path)');
    symlinkSync('gone.yaml', join(dir, 'dangling.yaml'));
    expect(read('dangling.yaml', 'recipe')).toBe(
      'dangling.yaml: is a symbolic link to gone.yaml, which does not exist (fix: point the link at a recipe)',
    );
    mkdirSync(join(dir, 'empty'));
    expect(read('empty', 'recipe')).toBe('empty: is a folder, expected a recipe .yaml file');
  });

  test('UTF-16, a NUL byte and bytes that are not UTF-8 are named, with the line', () => {
    writeFileSync(join(dir, 'utf16.yaml'), Buffer.from('\ufeffa: 1\n', 'utf16le'));
    expect(read('utf16.yaml')).toBe('utf16.yaml: is UTF-16 text; mft reads UTF-8 (fix: save it as UTF-8)');
    writeFileSync(
      join(dir, 'latin1.yaml'),
      Buffer.concat([Buffer.from('a: 1\rb: 2\nc: caf'), Buffer.from([0xe9, 0x0a])]),
    );
    expect(read('latin1.yaml')).toBe(
      'latin1.yaml: is not UTF-8 text (an invalid byte on line 3) (fix: save it as UTF-8)',
    );
  });

  test('a file past the size bound is refused before it is read', () => {
    writeFileSync(join(dir, 'big.yaml'), 'a: 1\n'.repeat(MAX_CONFIG_FILE_BYTES / 4));
    expect(read('big.yaml')).toBe(
      'big.yaml: is 320 KiB; a task file is a few kB of key: value lines and mft reads at most 256 KiB (fix: check that this is the file you meant)',
    );
  });

  test('a named pipe is not read (it could block forever)', () => {
    execFileSync('mkfifo', [join(dir, 'pipe.yaml')]);
    expect(read('pipe.yaml')).toBe('pipe.yaml: is a named pipe, not a file; a task file is a YAML text file');
  });

  const isRoot = process.getuid?.() === 0;
  test.skipIf(isRoot)('an unreadable file says permission denied (skipped as root: root reads it)', () => {
    writeFileSync(join(dir, 'secret.yaml'), 'a: 1\n');
    chmodSync(join(dir, 'secret.yaml'), 0o000);
    expect(read('secret.yaml')).toBe(
      'secret.yaml: cannot read the task file: permission denied (fix: check its permissions (ls -l))',
    );
  });
});
