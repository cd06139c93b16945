import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import {
  appendMetrics,
  type EvalRow,
  readMetrics,
  type TrainRow,
  truncateMetrics,
} from '../../src/train/metrics.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

let dir = '';
afterEach(removeTempDirs);

function trainRow(step: number): TrainRow {
  return {
    type: 'train',
    step,
    loss: 2 - step / 10,
    lr: 1e-3,
    grad_norm: 0.5,
    tokens: 100,
    tokens_per_second: 1000,
    elapsed: step,
    epoch: step / 10,
  };
}

function evalRow(step: number): EvalRow {
  return {
    type: 'eval',
    step,
    eval_loss: 1.5,
    eval_perplexity: Math.exp(1.5),
    eval_tokens: 50,
    eval_rows: 2,
    elapsed: step,
  };
}

describe('metrics.jsonl', () => {
  test('one JSON object per line; eval rows never use the key loss', () => {
    dir = makeTempDir('metrics');
    const path = join(dir, 'metrics.jsonl');
    appendMetrics(path, trainRow(1));
    appendMetrics(path, evalRow(1));
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(Object.keys(JSON.parse(lines[0]!))).toEqual([
      'type',
      'step',
      'loss',
      'lr',
      'grad_norm',
      'tokens',
      'tokens_per_second',
      'elapsed',
      'epoch',
    ]);
    expect(JSON.parse(lines[1]!)).not.toHaveProperty('loss');
    expect(JSON.parse(lines[1]!).eval_loss).toBe(1.5);
  });

  test('truncating to a checkpoint step keeps rows <= step and drops a line torn by a kill', () => {
    dir = makeTempDir('metrics');
    const path = join(dir, 'metrics.jsonl');
    for (let s = 1; s <= 7; s++) appendMetrics(path, trainRow(s));
    appendMetrics(path, evalRow(5));
    appendFileSync(path, '{"type":"train","step":8,"lo'); // torn
    expect(readMetrics(path)).toHaveLength(8);
    const kept = truncateMetrics(path, 5);
    expect(kept.map((r) => `${r.type}${r.step}`)).toEqual([
      'train1',
      'train2',
      'train3',
      'train4',
      'train5',
      'eval5',
    ]);
    expect(readFileSync(path, 'utf8').split('\n').filter(Boolean)).toHaveLength(6);
    // appending continues the file
    appendMetrics(path, trainRow(6));
    expect(readMetrics(path).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 5, 6]);
  });

  test('a missing file reads as no rows', () => {
    expect(readMetrics('/nonexistent/metrics.jsonl')).toEqual([]);
  });
});
