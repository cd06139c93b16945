// Task files that are not plain YAML mappings of a few keys, as `mft config check` meets them:
// each is read correctly or refused with exit 2, one line per problem naming the place and the fix.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const dir = fileTempDir('config-faults');
const FIXTURES = join(REPO_ROOT, 'test/fixtures/configs');
// The three lines every task file below starts with: a valid task on shipped fixtures.
const HEAD = [
  'task: code_completion',
  `dataset: ${FIXTURES}/data/train.jsonl`,
  `base_model: ${FIXTURES}/tiny-model`,
];

function taskFile(name: string, text: string | Buffer): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** `mft config check file --json`: the exit status, the parsed config (when 0) and the error lines. */
function check(file: string): { status: number; config?: Record<string, unknown>; errors: string[] } {
  const r = runCli(['config', 'check', file, '--json']);
  // Dawn prints its own warnings when config check probes a GPU for backend auto (as train does)
  const errors = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('Warning: '));
  if (r.status !== 0) return { status: r.status, errors };
  return { status: 0, config: (JSON.parse(r.stdout) as { config: Record<string, unknown> }).config, errors };
}

describe('mft config check on task files that are not plain YAML mappings', () => {
  test('a duplicate key inside fields: is an error like a top-level one', () => {
    const file = taskFile(
      'nested-duplicate.yaml',
      [...HEAD, 'fields:', '  text: content', '  text: body', ''].join('\n'),
    );
    expect(check(file)).toEqual({
      status: 2,
      errors: [
        `mft: ${file}:6:3: fields.text: duplicate key (first at line 5, column 3) (fix: keep one of them)`,
      ],
    });
  });

  test('aliases resolve as PyYAML resolves them: lora_alpha: *r after &r 16 is 16', () => {
    const file = taskFile('alias.yaml', [...HEAD, 'lora_r: &r 16', 'lora_alpha: *r', ''].join('\n'));
    const r = check(file);
    expect(r.errors).toEqual([]);
    expect(r.status).toBe(0);
    expect(r.config).toMatchObject({ lora_r: 16, lora_alpha: 16 });
  });

  test('an alias bomb (billion laughs) is refused at once, naming the key', () => {
    const lines = [...HEAD, 'xa: &a [q_proj, q_proj, q_proj, q_proj, q_proj, q_proj, q_proj, q_proj]'];
    // Each level repeats the one before eight times: 8^9 values if followed to the end.
    const names = 'bcdefghij';
    for (let i = 0; i < names.length; i++) {
      lines.push(
        `${i === names.length - 1 ? 'lora_target_modules' : `x${i}`}: &${names[i]} [${Array(8)
          .fill(`*${i === 0 ? 'a' : names[i - 1]}`)
          .join(', ')}]`,
      );
    }
    const file = taskFile('alias-bomb.yaml', `${lines.join('\n')}\n`);
    const r = check(file);
    expect(r.status).toBe(2);
    expect(r.errors).toContain(
      `mft: ${file}:13:25: lora_target_modules: its aliases expand too far (an alias bomb?); mft follows at most 100 in one value (fix: write the value out)`,
    );
  });

  test('two documents (--- twice) are refused: the file must hold one', () => {
    const file = taskFile('two-documents.yaml', ['---', ...HEAD, '---', 'lora_r: 8', ''].join('\n'));
    expect(check(file)).toEqual({
      status: 2,
      errors: [
        `mft: ${file}:5:1: the file holds 2 YAML documents (a --- line starts each); mft reads one per file (fix: remove the --- line, or give each document its own file)`,
      ],
    });
  });

  test('CR-only line ends (old Mac) are line breaks, with the right line numbers', () => {
    const good = taskFile('cr-only.yaml', [...HEAD, 'lora_r: 4', ''].join('\r'));
    const r = check(good);
    expect(r.errors).toEqual([]);
    expect(r.config).toMatchObject({ lora_r: 4 });
    const bad = taskFile('cr-only-bad.yaml', [...HEAD, 'lora_r: four', ''].join('\r'));
    expect(check(bad)).toEqual({
      status: 2,
      errors: [`mft: ${bad}:4:9: lora_r: expected an integer, got "four"`],
    });
  });

  test('a symbolic link to itself, a folder and a binary file are named for what they are', () => {
    const loop = join(dir, 'loop.yaml');
    symlinkSync('loop.yaml', loop);
    expect(check(loop)).toEqual({
      status: 2,
      errors: [
        `mft: ${loop}: is a symbolic link that leads back to itself (a loop of links) (fix: point the link at a task file, or give the file's own path)`,
      ],
    });
    const folder = join(dir, 'folder.yaml');
    mkdirSync(folder);
    writeFileSync(join(folder, 'inner.yaml'), 'task: text\n');
    expect(check(folder)).toEqual({
      status: 2,
      errors: [
        `mft: ${folder}: is a folder, expected a task .yaml file (fix: give a file in it, such as ${folder}/inner.yaml)`,
      ],
    });
    const binary = taskFile(
      'weights.yaml',
      Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x0a, 0x01, 0x00, 0x76]),
    );
    expect(check(binary)).toEqual({
      status: 2,
      errors: [
        `mft: ${binary}: holds binary data (a NUL byte on line 2), not YAML text (fix: give the path of a .yaml text file)`,
      ],
    });
  });

  // Before the bounds these took minutes (placing one problem per key searched the whole mapping).
  test('a 650k-key fields: mapping is refused at once, by size and by key count', { timeout: 60_000 }, () => {
    const entries = (n: number) => Array.from({ length: n }, (_, i) => `  k${i}: c${i}`);
    const huge = taskFile('fields-650k.yaml', [...HEAD, 'fields:', ...entries(650_000), ''].join('\n'));
    const r = check(huge);
    expect(r.status).toBe(2);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(
      /^mft: .*fields-650k\.yaml: is 1\d\.\d MiB; a task file is a few kB of key: value lines and mft reads at most 256 KiB \(fix: check that this is the file you meant\)$/,
    );
    const many = taskFile('fields-5k.yaml', [...HEAD, 'fields:', ...entries(5000), ''].join('\n'));
    expect(check(many)).toEqual({
      status: 2,
      errors: [
        `mft: ${many}:5:3: fields: holds 5000 keys; mft reads at most 1000 in one mapping (fix: keep at most 1000 (a task file needs a few dozen))`,
      ],
    });
  });
});
