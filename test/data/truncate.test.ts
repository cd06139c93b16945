import { expect, test } from 'vitest';
import { truncateSample } from '../../src/data/truncate.js';

const sample = { ids: Int32Array.from([1, 2, 3, 4, 5]), labels: Int32Array.from([-100, 2, 3, 4, 5]) };
const ids = (s: { ids: Int32Array }[]) => s.map((x) => Array.from(x.ids));

test('a sample that fits is kept whole whatever the mode', () => {
  for (const mode of ['split', 'truncate', 'drop'] as const)
    expect(truncateSample(sample, 5, mode)).toEqual([sample]);
});

test('split cuts into pieces of seqLen, labels alongside', () => {
  const pieces = truncateSample(sample, 2, 'split');
  expect(ids(pieces)).toEqual([[1, 2], [3, 4], [5]]);
  expect(pieces.map((p) => Array.from(p.labels))).toEqual([[-100, 2], [3, 4], [5]]);
});

test('truncate keeps the first seqLen tokens; drop leaves the sample out', () => {
  expect(ids(truncateSample(sample, 3, 'truncate'))).toEqual([[1, 2, 3]]);
  expect(truncateSample(sample, 3, 'drop')).toEqual([]);
});
