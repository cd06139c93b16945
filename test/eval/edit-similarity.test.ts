/**
 * CodeXGLUE's line-completion scores: exact match of whitespace-separated words, and edit
 * similarity = 2 LCS / (|a| + |b|) (the normalized Indel similarity of python-Levenshtein /
 * rapidfuzz, which fuzz.ratio reports x100). Expected values are worked out by hand beside each case.
 */
import { describe, expect, test } from 'vitest';
import { editSimilarity, exactMatch, lcsLength } from '../../src/eval/index.js';
import { Rng } from '../../src/util/index.js';

/** LCS by the textbook recursion with memoization: an independent implementation to compare with. */
function lcsReference(a: string, b: string): number {
  const memo = new Map<string, number>();
  const go = (i: number, j: number): number => {
    if (i === a.length || j === b.length) return 0;
    const key = `${i},${j}`;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    const v = a[i] === b[j] ? 1 + go(i + 1, j + 1) : Math.max(go(i + 1, j), go(i, j + 1));
    memo.set(key, v);
    return v;
  };
  return go(0, 0);
}

const points = (s: string) => Array.from(s, (c) => c.codePointAt(0)!);

describe('editSimilarity', () => {
  test("fuzzywuzzy's documented example: ratio('this is a test', 'this is a test!') = 97", () => {
    // LCS = 14 (the whole first string), lengths 14 + 15: 28 / 29 = 0.9655 -> fuzz.ratio 97.
    expect(editSimilarity('this is a test', 'this is a test!')).toBeCloseTo(28 / 29, 12);
    expect(Math.round(100 * editSimilarity('this is a test', 'this is a test!'))).toBe(97);
  });

  test('kitten / sitting: LCS "ittn" = 4, so 8 / 13 (Levenshtein distance 3 would say otherwise)', () => {
    expect(editSimilarity('kitten', 'sitting')).toBeCloseTo(8 / 13, 12);
  });

  test('a swap costs two edits: "ab" vs "ba" has LCS 1, similarity 2 / 4', () => {
    expect(editSimilarity('ab', 'ba')).toBe(0.5);
  });

  test('empty strings: both empty = 1, one empty = 0', () => {
    expect(editSimilarity('', '')).toBe(1);
    expect(editSimilarity('abc', '')).toBe(0);
    expect(editSimilarity('', 'x')).toBe(0);
  });

  test('counts code points, as Python does: an emoji is one character', () => {
    // '😀a' is 2 code points (3 UTF-16 units); LCS with 'a' is 1: 2 * 1 / 3.
    expect(editSimilarity('😀a', 'a')).toBeCloseTo(2 / 3, 12);
    expect(editSimilarity('😀', '😁')).toBe(0); // different code points sharing a UTF-16 high surrogate
  });

  test('is symmetric and identical strings score 1', () => {
    expect(editSimilarity('return a + b', 'return a+b')).toBe(editSimilarity('return a+b', 'return a + b'));
    expect(editSimilarity('x = f(y)', 'x = f(y)')).toBe(1);
  });
});

describe('lcsLength', () => {
  test('agrees with the memoized recursion on random strings', () => {
    const rng = new Rng(11);
    for (let k = 0; k < 200; k++) {
      const word = (n: number) => Array.from({ length: n }, () => 'abcd'[rng.int(4)]).join('');
      const a = word(rng.int(12));
      const b = word(rng.int(12));
      expect(lcsLength(points(a), points(b))).toBe(lcsReference(a, b));
    }
  });
});

describe('exactMatch', () => {
  test('compares whitespace-separated words, like pred.split() == gt.split()', () => {
    expect(exactMatch('  return a+b', 'return  a+b')).toBe(true);
    expect(exactMatch('return a+b\t', 'return a+b')).toBe(true);
    expect(exactMatch('', '   ')).toBe(true);
  });

  test('spacing inside a word and different words do not match', () => {
    expect(exactMatch('return a + b', 'return a+b')).toBe(false);
    expect(exactMatch('return a', 'return a b')).toBe(false);
    expect(exactMatch('x', '')).toBe(false);
  });
});
