import { describe, expect, test } from 'vitest';
import { editDistance, suggest } from '../../src/config/suggest.js';
import { nestedMapping, readYamlMapping } from '../../src/config/yaml-source.js';

describe('readYamlMapping', () => {
  test('YAML 1.2 core schema: 2e-4 is a number, yes and on are strings, ~ is null', () => {
    const m = readYamlMapping('a: 2e-4\nb: yes\nc: on\nd: ~\ne: 0x10\nf: 1_000\n', 'x.yaml');
    expect(m.problems).toEqual([]);
    expect(Object.fromEntries(m.entries.map((e) => [e.key, e.value]))).toEqual({
      a: 0.0002,
      b: 'yes',
      c: 'on',
      d: null,
      e: 16,
      f: '1_000',
    });
  });

  test('places values and elements nested in lists and maps', () => {
    const text = 'top: 1\nlist: [a, bb, ccc]\nblock:\n  - x\n  - y\nmap:\n  inner: {deep: 5}\n';
    const m = readYamlMapping(text, 'f.yaml');
    const entry = (k: string) => m.entries.find((e) => e.key === k)!;
    expect(m.where(entry('top'))).toBe('f.yaml:1:6');
    expect(m.where(entry('list'), [2])).toBe('f.yaml:2:15');
    expect(m.where(entry('block'), [1])).toBe('f.yaml:5:5');
    expect(m.where(entry('map'), ['inner', 'deep'])).toBe('f.yaml:7:17');
    // a path that does not exist falls back to the deepest node found
    expect(m.where(entry('list'), [9])).toBe('f.yaml:2:7');
    expect(m.whereKey(entry('map'))).toBe('f.yaml:6:1');
  });

  test('duplicate keys in a nested mapping are reported at the second one', () => {
    const m = readYamlMapping('defaults:\n  lora_r: 8\n  lora_r: 4\n', 'r.yaml');
    const inner = nestedMapping(m, m.entries[0]!);
    expect(inner.problems).toEqual([
      {
        where: 'r.yaml:3:3',
        message: 'lora_r: duplicate key (first at line 2, column 3)',
        fix: 'keep one of them',
      },
    ]);
    expect(inner.entries.map((e) => [e.key, e.value])).toEqual([['lora_r', 8]]);
  });

  test('keys that are not names, and a document that is a scalar', () => {
    expect(
      readYamlMapping('1: a\n[x]: b\n', 'k.yaml').problems.map((p) => `${p.where} ${p.message}`),
    ).toEqual(['k.yaml:1:1 expected a key name, got 1', 'k.yaml:2:1 expected a key name, got ["x"]']);
    expect(readYamlMapping('just text\n', 's.yaml').problems).toEqual([
      { where: 's.yaml:1:1', message: 'expected key: value lines, got the value "just text"' },
    ]);
    expect(readYamlMapping('', 'e.yaml')).toMatchObject({ ok: true, entries: [], problems: [] });
  });
});

describe('suggestions', () => {
  test('edit distance counts a swap of neighbours as one edit', () => {
    expect(editDistance('lora_aplha', 'lora_alpha')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });

  test('only close candidates are suggested', () => {
    expect(suggest('lora_aplha', ['lora_alpha', 'lora_r'])).toBe('lora_alpha');
    expect(suggest('colour', ['lora_alpha', 'seed'])).toBeUndefined();
    expect(suggest('NF4', ['none', 'nf4'])).toBe('nf4');
  });
});
