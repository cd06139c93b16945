/**
 * The two string metrics of code completion, as CodeXGLUE's line-level evaluator computes them
 * (CodeXGLUE `Code-Code/CodeCompletion-line/evaluator/evaluator.py`):
 *
 *   exact match      pred.split() == gt.split()   (the same whitespace-separated words)
 *   edit similarity  fuzz.ratio(pred, gt) / 100
 *
 * fuzz.ratio has two readings: fuzzywuzzy without python-Levenshtein uses difflib's
 * SequenceMatcher (Ratcliff-Obershelp, with its junk heuristic), while python-Levenshtein,
 * rapidfuzz and thefuzz compute the normalized Indel similarity. mft uses the latter, which is
 * exact and has a closed form:
 *
 *   edit_similarity(a, b) = 2 * LCS(a, b) / (|a| + |b|)       (1 when both are empty)
 *
 * LCS is the longest common subsequence of code points (Python's string units), so the Indel
 * distance (insertions + deletions) is |a| + |b| - 2 LCS. Unlike fuzz.ratio it is not rounded to
 * an integer percent.
 */

/** The words of `s`: split on runs of whitespace, like Python's `str.split()`. */
function words(s: string): string[] {
  const trimmed = s.trim();
  return trimmed === '' ? [] : trimmed.split(/\s+/u);
}

/**
 * CodeXGLUE's exact match: the same whitespace-separated words (indentation and spacing ignored).
 * @example exactMatch('  return a+b', 'return  a+b'); // true
 */
export function exactMatch(prediction: string, reference: string): boolean {
  const a = words(prediction);
  const b = words(reference);
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

/**
 * Length of the longest common subsequence of two code-point arrays, in O(|a| |b|) time and
 * O(min(|a|, |b|)) memory (one row of the dynamic programme).
 */
export function lcsLength(a: readonly number[], b: readonly number[]): number {
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  // row[j] = LCS(long[..i], short[..j]) for the current i; `diag` holds row[j-1] of the previous i.
  const row = new Int32Array(short.length + 1);
  for (let i = 1; i <= long.length; i++) {
    let diag = 0;
    const ai = long[i - 1];
    for (let j = 1; j <= short.length; j++) {
      const up = row[j]!;
      row[j] = ai === short[j - 1] ? diag + 1 : Math.max(up, row[j - 1]!);
      diag = up;
    }
  }
  return row[short.length]!;
}

function codePoints(s: string): number[] {
  return Array.from(s, (c) => c.codePointAt(0)!);
}

/**
 * Edit similarity in [0, 1]: 2 * LCS / (|a| + |b|) over code points; 1 when both are empty.
 * @example editSimilarity('this is a test', 'this is a test!'); // 28 / 29 = 0.9655 (fuzz.ratio 97)
 */
export function editSimilarity(a: string, b: string): number {
  const ca = codePoints(a);
  const cb = codePoints(b);
  const total = ca.length + cb.length;
  if (total === 0) return 1;
  return (2 * lcsLength(ca, cb)) / total;
}
