import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import {
  latestCheckpoint,
  listCheckpoints,
  readOptimizerState,
  readTrainerState,
  removeTemporaries,
  rotateCheckpoints,
  saveCheckpoint,
  TRAINER_STATE_VERSION,
  type TrainerState,
} from '../../src/train/checkpoint.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

let dir = '';
afterEach(removeTempDirs);

function state(step: number, extra: Partial<TrainerState> = {}): TrainerState {
  return {
    version: TRAINER_STATE_VERSION,
    step,
    total_steps: 20,
    epoch: 0,
    row_in_epoch: step * 2,
    rng_state: { seed: 42, next_step: step + 1 },
    eval_loss: null,
    best_eval_loss: null,
    best_step: null,
    elapsed: step,
    trained_tokens: 10 * step,
    processed_tokens: 16 * step,
    ...extra,
  };
}

function save(runDir: string, step: number, extra: Partial<TrainerState> = {}): string {
  return saveCheckpoint(runDir, {
    writeAdapter: (d) => writeFileSync(join(d, 'adapter_model.safetensors'), `weights of step ${step}`),
    optimizer: {
      step,
      exp_avg: new Map([['k.lora_A.weight', Float32Array.from([step, 1, 2])]]),
      exp_avg_sq: new Map([['k.lora_A.weight', Float32Array.from([0.5, step, 3])]]),
    },
    state: state(step, extra),
  });
}

describe('checkpoints', () => {
  test('a checkpoint holds the adapter, the optimizer moments and trainer_state, and reads back', () => {
    dir = makeTempDir('ckpt');
    const path = save(dir, 5);
    expect(path).toBe(join(dir, 'checkpoint-5'));
    expect(readdirSync(path).sort()).toEqual([
      'adapter_model.safetensors',
      'optimizer.safetensors',
      'trainer_state.json',
    ]);
    expect(readTrainerState(path)).toEqual(state(5));
    const opt = readOptimizerState(join(path, 'optimizer.safetensors'));
    expect(opt.step).toBe(5);
    expect(Array.from(opt.exp_avg.get('k.lora_A.weight')!)).toEqual([5, 1, 2]);
    expect(Array.from(opt.exp_avg_sq.get('k.lora_A.weight')!)).toEqual([0.5, 5, 3]);
    // nothing temporary left beside it
    expect(readdirSync(dir)).toEqual(['checkpoint-5']);
  });

  test('a write that fails midway leaves no checkpoint under its name and the previous one intact', () => {
    dir = makeTempDir('ckpt');
    save(dir, 5);
    expect(() =>
      saveCheckpoint(dir, {
        writeAdapter: () => {
          throw new Error('disk full');
        },
        optimizer: { step: 10, exp_avg: new Map(), exp_avg_sq: new Map() },
        state: state(10),
      }),
    ).toThrow('disk full');
    expect(existsSync(join(dir, 'checkpoint-10'))).toBe(false);
    expect(latestCheckpoint(dir)?.step).toBe(5);
  });

  test('a directory left by a kill before the rename is not a checkpoint and is cleaned up', () => {
    dir = makeTempDir('ckpt');
    save(dir, 5);
    // what a kill -9 during the write of checkpoint-10 leaves
    mkdirSync(join(dir, '.mft-tmp-checkpoint-10-1234'));
    writeFileSync(join(dir, '.mft-tmp-checkpoint-10-1234', 'trainer_state.json'), '{"step": 10');
    // a checkpoint-N without trainer_state.json (not written by mft) is not complete either
    mkdirSync(join(dir, 'checkpoint-12'));
    expect(latestCheckpoint(dir)?.step).toBe(5);
    removeTemporaries(dir);
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-12', 'checkpoint-5']);
  });

  test('rotation keeps save_total_limit newest plus the best', () => {
    dir = makeTempDir('ckpt');
    for (const s of [10, 20, 30, 40, 50]) save(dir, s);
    expect(rotateCheckpoints(dir, 2, 20)).toEqual([10, 30]);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([20, 40, 50]);
    expect(rotateCheckpoints(dir, 2, null)).toEqual([20]);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([40, 50]);
  });

  test('saving a step that exists replaces it (a resumed run rewriting its future)', () => {
    dir = makeTempDir('ckpt');
    save(dir, 5, { elapsed: 1 });
    save(dir, 5, { elapsed: 2 });
    expect(readTrainerState(join(dir, 'checkpoint-5')).elapsed).toBe(2);
    expect(readdirSync(dir)).toEqual(['checkpoint-5']);
  });

  test('a malformed trainer_state.json is a user error naming the file', () => {
    dir = makeTempDir('ckpt');
    const path = save(dir, 5);
    writeFileSync(join(path, 'trainer_state.json'), '{"step": 5');
    expect(() => readTrainerState(path)).toThrow(/trainer_state.json: cannot be read/);
    writeFileSync(join(path, 'trainer_state.json'), JSON.stringify({ ...state(5), step: -1 }));
    expect(() => readTrainerState(path)).toThrow(
      /trainer_state.json: malformed \(step missing or not a non-negative integer\)/,
    );
    writeFileSync(join(path, 'trainer_state.json'), JSON.stringify({ ...state(5), version: 99 }));
    expect(() => readTrainerState(path)).toThrow(/version 99, this mft reads version 1/);
    expect(readFileSync(join(path, 'adapter_model.safetensors'), 'utf8')).toBe('weights of step 5');
  });

  test('an optimizer file that is not mft state is refused', () => {
    dir = makeTempDir('ckpt');
    expect(() => readOptimizerState(join(dir, 'optimizer.safetensors'))).toThrow(
      /optimizer.safetensors: missing/,
    );
  });
});
