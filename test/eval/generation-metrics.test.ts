/**
 * Line completion and completion exact match on the real tinystories-260k model. The expected
 * predictions come from llama2.c's run.c greedy output (test/fixtures/stories260K/), which was
 * produced outside this project: greedy decoding from BOS gives the story, so a prompt that is the
 * story up to a line boundary must be continued with the story's next line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { loadRecipe } from '../../src/config/index.js';
import {
  drawIndices,
  type EvalRecord,
  LazyTokenizer,
  pickCompletions,
  pickLines,
  readEvalData,
  scoreGenerations,
} from '../../src/eval/index.js';
import { type LoadedModel, loadModel } from '../../src/model/index.js';
import type { MftTokenizer } from '../../src/tokenizer/index.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const STORIES = new URL('../../checkpoints/base/tinystories-260k/', import.meta.url).pathname;
const FIXTURE = new URL('../fixtures/stories260K/', import.meta.url).pathname;
const story = readFileSync(`${FIXTURE}greedy_t0_n256_noprompt.txt`, 'utf8').split('\n');
const tmp = fileTempDir('eval-gen');

/** 2 LCS / (|a| + |b|) by a plain full-table dynamic programme, for the expected similarity. */
function similarity(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  const t = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      t[i]![j] = x[i - 1] === y[j - 1] ? t[i - 1]![j - 1]! + 1 : Math.max(t[i - 1]![j]!, t[i]![j - 1]!);
    }
  }
  return x.length + y.length === 0 ? 1 : (2 * t[x.length]![y.length]!) / (x.length + y.length);
}

const textRecord = (where: string, text: string): EvalRecord => ({
  where,
  formatted: { kind: 'segments', segments: [{ text, trained: true }], chat: false },
});

describe('pickLines', () => {
  test('one non-blank line after the first per record; prompt = the text before it', () => {
    const picked = pickLines(
      [
        textRecord('a:1', 'first\n\n  second\r\n'),
        textRecord('a:2', 'only one line\n'),
        textRecord('a:3', 'x\ny'),
      ],
      10,
      0,
    );
    // a:1 has lines 'first', '', '  second\r', '': only line 3 is a target; a:2 has none.
    expect(picked).toEqual([
      { where: 'a:1:line 3', prompt: 'first\n\n', reference: '  second' },
      { where: 'a:3:line 2', prompt: 'x\n', reference: 'y' },
    ]);
  });

  test('at most maxSamples records, a seeded draw kept in reading order', () => {
    const records = Array.from({ length: 30 }, (_, i) => textRecord(`r:${i}`, `a\nline ${i}`));
    const a = pickLines(records, 5, 1);
    expect(a.length).toBe(5);
    expect(pickLines(records, 5, 1)).toEqual(a);
    expect(pickLines(records, 5, 2)).not.toEqual(a);
    const indices = a.map((s) => Number(/r:(\d+)/.exec(s.where)![1]));
    expect(indices).toEqual([...indices].sort((x, y) => x - y));
    expect(drawIndices(3, 5, 0)).toEqual([0, 1, 2]);
  });
});

describe('generation metrics on tinystories-260k', () => {
  let model: LoadedModel;
  let tok: MftTokenizer;
  beforeAll(async () => {
    await initBackend('wasm');
    model = await loadModel(STORIES);
    tok = await new LazyTokenizer(STORIES).get('test');
  });

  test("line completion continues the story with llama2.c's next line; scores as computed here", async () => {
    const records = [
      textRecord('s:1', `${story[0]}\n${story[1]}\n`),
      textRecord('s:2', `${story[0]}\nThe cat sat on the mat.\n`),
    ];
    const before = tf.memory().numTensors;
    const m = await scoreGenerations(model, tok, pickLines(records, 10, 0), 'line', { maxNewTokens: 128 });
    expect(tf.memory().numTensors).toBe(before);
    expect(m.samples).toBe(2);
    const [p1, p2] = m.predictions;
    expect(p1!.prediction).toBe(story[1]);
    expect(p1!.exact_match).toBe(true);
    expect(p1!.edit_similarity).toBe(1);
    expect(p2!.prediction).toBe(story[1]);
    expect(p2!.reference).toBe('The cat sat on the mat.');
    expect(p2!.exact_match).toBe(false);
    const expected = similarity(story[1]!, 'The cat sat on the mat.');
    expect(p2!.edit_similarity).toBeCloseTo(expected, 12);
    expect(m.exact_match).toBe(0.5);
    expect(m.edit_similarity).toBeCloseTo((1 + expected) / 2, 12);
    // the story's second line is 69 tokens, then the newline that stops generation
    expect(m.generated_tokens).toBe(2 * 70);
  });

  test('completion exact match: greedy continuation of the prompt against the completion field', async () => {
    // run.c's greedy story starts "Once upon a time, there was a little girl named Lily." and
    // ", there was a little girl named Lily." is 11 tokens of tok512.
    const path = join(tmp, 'completions.jsonl');
    writeFileSync(
      path,
      [
        { prompt: 'Once upon a time', completion: ', there was a little girl named Lily.' },
        { prompt: 'Once upon a time', completion: ', there was a boy.' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const data = await readEvalData({
      files: [{ path, kind: 'jsonl' }],
      recipe: loadRecipe('completion'),
      seed: 0,
      onBadRecord: 'error',
      length: { kind: 'error' },
      maxPositions: 512,
      vocabSize: 512,
      tokenizer: new LazyTokenizer(STORIES),
    });
    const samples = pickCompletions(data.records, 10, 0);
    expect(samples.map((s) => s.prompt)).toEqual(['Once upon a time', 'Once upon a time']);
    const m = await scoreGenerations(model, tok, samples, 'completion', { maxNewTokens: 11 });
    expect(m.predictions.map((p) => p.prediction)).toEqual([
      story[0]!.slice(16, 53),
      story[0]!.slice(16, 53),
    ]);
    expect(story[0]!.slice(16, 53)).toBe(', there was a little girl named Lily.');
    expect(m.predictions.map((p) => p.exact_match)).toEqual([true, false]);
    expect(m.predictions[1]!.edit_similarity).toBeCloseTo(
      similarity(', there was a little girl named Lily.', ', there was a boy.'),
      12,
    );
    expect(m.exact_match).toBe(0.5);
  });
});
