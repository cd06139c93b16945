import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import {
  configSchemaRows,
  loadTaskConfig,
  schemaMarkdown,
  schemaText,
  TASK_KEYS,
} from '../../src/config/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';

const REFERENCE = readFileSync(join(REPO_ROOT, 'docs/task-files.md'), 'utf8');
const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';

describe('configuration reference', () => {
  test('one row per task key, in table order, each with a type and a description', () => {
    const rows = configSchemaRows();
    expect(rows.map((r) => r.key)).toEqual(TASK_KEYS);
    for (const r of rows) {
      expect(r.type, r.key).not.toBe('any');
      expect(r.description.length, r.key).toBeGreaterThan(10);
    }
    const row = (k: string) => rows.find((r) => r.key === k)!;
    expect(row('lora_dropout')).toMatchObject({ type: 'number in [0, 1)', default: '0.05', group: 'LoRA' });
    expect(row('lora_r')).toMatchObject({ type: 'int > 0', default: '16' });
    expect(row('quantization')).toMatchObject({ type: 'none|int8|nf4', default: 'none' });
    expect(row('adam_epsilon').default).toBe('1e-8');
    expect(row('max_steps')).toMatchObject({ type: 'int > 0 or null', default: 'null' });
    expect(row('sequence_len').default).toBe('recipe');
    expect(row('task').default).toBe('required');
  });

  test('the printed defaults are the values a config gets when nothing sets the key', async () => {
    const c = await loadTaskConfig('test/fixtures/configs/valid/minimal.yaml', { cwd: REPO_ROOT });
    const fromDefaults = configSchemaRows().filter(
      (r) => c.sources[r.key] === 'default' && r.type !== 'path',
    );
    expect(fromDefaults.length).toBeGreaterThan(20);
    for (const r of fromDefaults) expect(c[r.key], r.key).toEqual(parse(r.default));
  });

  test('markdown tables have four cells per row (a | inside a cell is escaped)', () => {
    const md = schemaMarkdown();
    const rows = md.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.length).toBe(TASK_KEYS.length);
    for (const line of rows) expect(line.split(/(?<!\\)\|/).length, line).toBe(6);
    expect(md).not.toMatch(/<task-file-stem>/); // would be read as an HTML tag
  });

  test('plain text lists every key under its group', () => {
    const text = schemaText();
    for (const key of TASK_KEYS) expect(text).toMatch(new RegExp(`^${key} `, 'm'));
    expect(text).toMatch(/^# optimisation$/m);
  });

  test("docs/task-files.md's configuration reference is `mft config schema --markdown`", () => {
    expect(REFERENCE).toContain(START);
    const section = REFERENCE.slice(REFERENCE.indexOf(START) + START.length, REFERENCE.indexOf(END));
    expect(section.trim()).toBe(schemaMarkdown().trim());
  });
});
