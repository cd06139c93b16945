import { describe, expect, test } from 'vitest';
import { editDistance, suggest } from '../../src/config/suggest.js';
import {
  MAX_ALIASES,
  MAX_COLLECTION_ITEMS,
  MAX_NESTING,
  nestedMapping,
  readYamlMapping,
} from '../../src/config/yaml-source.js';
import { formatProblem, formatWhere } from '../../src/util/index.js';

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
    expect(formatWhere(m.where(entry('top')))).toBe('f.yaml:1:6');
    expect(formatWhere(m.where(entry('list'), [2]))).toBe('f.yaml:2:15');
    expect(formatWhere(m.where(entry('block'), [1]))).toBe('f.yaml:5:5');
    expect(formatWhere(m.where(entry('map'), ['inner', 'deep']))).toBe('f.yaml:7:17');
    // a path that does not exist falls back to the deepest node found
    expect(formatWhere(m.where(entry('list'), [9]))).toBe('f.yaml:2:7');
    expect(formatWhere(m.whereKey(entry('map')))).toBe('f.yaml:6:1');
  });

  test('duplicate keys in a nested mapping are reported at the second one, with their path', () => {
    const m = readYamlMapping('defaults:\n  lora_r: 8\n  lora_r: 4\n', 'r.yaml');
    expect(m.problems).toEqual([
      {
        where: { file: 'r.yaml', line: 3, col: 3 },
        message: 'defaults.lora_r: duplicate key (first at line 2, column 3)',
        fix: 'keep one of them',
      },
    ]);
    const inner = nestedMapping(m, m.entries[0]!);
    expect(inner.problems).toEqual([]);
    expect(inner.entries.map((e) => [e.key, e.value])).toEqual([['lora_r', 8]]);
  });

  test('keys that are not names, and a document that is a scalar', () => {
    expect(
      readYamlMapping('1: a\n[x]: b\n', 'k.yaml').problems.map(
        (p) => `${formatWhere(p.where!)} ${p.message}`,
      ),
    ).toEqual(['k.yaml:1:1 expected a key name, got 1', 'k.yaml:2:1 expected a key name, got ["x"]']);
    expect(readYamlMapping('just text\n', 's.yaml').problems).toEqual([
      {
        where: { file: 's.yaml', line: 1, col: 1 },
        message: 'expected key: value lines, got the value "just text"',
      },
    ]);
    expect(readYamlMapping('', 'e.yaml')).toMatchObject({ ok: true, entries: [], problems: [] });
  });
});

describe('readYamlMapping: aliases, documents, line ends and bounds', () => {
  const lines = (text: string, file = 'a.yaml') => {
    const m = readYamlMapping(text, file);
    return {
      ok: m.ok,
      problems: m.problems.map(formatProblem),
      values: Object.fromEntries(m.entries.map((e) => [e.key, e.value])),
    };
  };

  test('aliases resolve to their anchor, in scalars, lists and maps', () => {
    const r = lines('a: &r 16\nb: *r\nc: &l [x, y]\nd: *l\ne: {k: *r}\n');
    expect(r).toEqual({
      ok: true,
      problems: [],
      values: { a: 16, b: 16, c: ['x', 'y'], d: ['x', 'y'], e: { k: 16 } },
    });
  });

  test('an alias with no anchor above it, or inside the value it names, stops the file', () => {
    expect(lines('a: *r\nb: &r 1\nc: &s [1, *s]\n')).toEqual({
      ok: false,
      problems: [
        'a.yaml:1:4: a: *r names no anchor above it (fix: put &r on a value above it, or write the value out)',
        'a.yaml:3:11: c[1]: *s is inside the value &s that it names (fix: write the value out)',
      ],
      values: {},
    });
  });

  test('a merge key is refused, not read as a key named <<', () => {
    expect(lines('a: &m {x: 1}\nb:\n  <<: *m\n  y: 2\n').problems).toEqual([
      'a.yaml:3:3: b.<<: YAML merge keys are not supported (fix: write the keys out)',
    ]);
  });

  test('a second document is reported where it starts; a leading --- is one document', () => {
    expect(lines('a: 1\n---\nb: 2\n---\n').problems).toEqual([
      'a.yaml:2:1: the file holds 3 YAML documents (a --- line starts each); mft reads one per file (fix: remove the --- line, or give each document its own file)',
    ]);
    expect(lines('---\na: 1\n')).toEqual({ ok: true, problems: [], values: { a: 1 } });
  });

  test('a CR alone ends a line (old Mac), CRLF too, and positions count those lines', () => {
    for (const end of ['\r', '\r\n']) {
      const m = readYamlMapping(['a: 1', 'b:', '  - x', '  - y', ''].join(end), 'cr.yaml');
      expect(m.problems).toEqual([]);
      expect(m.entries.map((e) => [e.key, e.value])).toEqual([
        ['a', 1],
        ['b', ['x', 'y']],
      ]);
      expect(formatWhere(m.where(m.entries[1]!, [1]))).toBe('cr.yaml:4:5');
    }
  });

  test('a mapping or list past the bound, deep nesting and many aliases stop the file with one line each', () => {
    const keys = Array.from({ length: MAX_COLLECTION_ITEMS + 1 }, (_, i) => `  k${i}: v`).join('\n');
    expect(lines(`a: 1\nfields:\n${keys}\n`)).toMatchObject({
      ok: false,
      problems: [
        `a.yaml:3:3: fields: holds ${MAX_COLLECTION_ITEMS + 1} keys; mft reads at most ${MAX_COLLECTION_ITEMS} in one mapping (fix: keep at most ${MAX_COLLECTION_ITEMS} (a task file needs a few dozen))`,
      ],
    });
    const list = `l: [${Array(MAX_COLLECTION_ITEMS + 1)
      .fill('x')
      .join(', ')}]\n`;
    expect(lines(list).problems[0]).toMatch(
      /^a\.yaml:1:4: l: holds 1001 items; mft reads at most 1000 in one list/,
    );
    const deep = `d: ${'['.repeat(MAX_NESTING + 1)}${']'.repeat(MAX_NESTING + 1)}\n`;
    expect(lines(deep).problems).toEqual([
      `a.yaml:1:${3 + MAX_NESTING}: d${'[0]'.repeat(MAX_NESTING - 1)}: nested more than ${MAX_NESTING} levels deep (fix: a task file needs two levels)`,
    ]);
    const deeper = `d: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
    // yaml's own stack runs out: where depends on the stack size.
    const tooDeep = lines(deeper).problems;
    expect(tooDeep).toHaveLength(1);
    expect(tooDeep[0]).toMatch(/^a\.yaml:1:\d+: YAML syntax error: nested too deeply to read$/);
    const aliases = `a: &r 1\nb: [${Array(MAX_ALIASES + 1)
      .fill('*r')
      .join(', ')}]\n`;
    expect(lines(aliases).problems).toEqual([
      `a.yaml:2:${5 + 4 * MAX_ALIASES}: the file holds more than ${MAX_ALIASES} aliases (fix: write the values out)`,
    ]);
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
