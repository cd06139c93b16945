import { describe, expect, test } from 'vitest';
import { summaryLines } from '../../src/cli/train.js';
import { jsonOutput, snakeCase, snakeCaseKeys } from '../../src/util/index.js';

describe('--json output', () => {
  test('keys become snake_case at every depth; data keys (paths, tensor names) are kept', () => {
    expect(snakeCase('adapterDir')).toBe('adapter_dir');
    expect(snakeCase('tokensPerSecond')).toBe('tokens_per_second');
    expect(snakeCase('baseEvalLoss')).toBe('base_eval_loss');
    expect(snakeCase('eval_loss')).toBe('eval_loss');
    expect(snakeCase('model.layers.0.q_proj.weight')).toBe('model.layers.0.q_proj.weight');
    expect(snakeCaseKeys({ runDir: 'r', nested: [{ bestStep: 3 }], 'a/B.c': 1 })).toEqual({
      run_dir: 'r',
      nested: [{ best_step: 3 }],
      'a/B.c': 1,
    });
    expect(jsonOutput({ lastLoss: 1 })).toBe('{"last_loss":1}\n');
    expect(jsonOutput({ a: 1 }, 2)).toBe('{\n  "a": 1\n}\n');
  });

  test('the train summary result has no camelCase key left', () => {
    // a TrainResult as train() returns it
    const result = {
      runDir: '/r',
      adapterDir: '/r/adapter',
      lastCheckpoint: '/r/checkpoint-2',
      step: 2,
      totalSteps: 2,
      lastLoss: 1.5,
      baseEvalLoss: 2,
      finalEvalLoss: 1.6,
      bestEvalLoss: 1.6,
      bestStep: 2,
      trainedTokens: 10,
      processedTokens: 20,
      elapsed: 1,
      interrupted: null,
      baseModel: '/m',
      configFile: '/t.yaml',
      backend: 'wasm',
      workers: { count: 1, reason: 'num_workers: 1' },
    };
    const keys = Object.keys(JSON.parse(jsonOutput(result)) as object);
    expect(keys.filter((k) => /[A-Z]/.test(k))).toEqual([]);
    expect(keys).toContain('base_eval_loss');
    expect(summaryLines(result, [], 'npx mft').filter((l) => l.trim().startsWith('npx mft '))).toHaveLength(
      2,
    );
  });
});
