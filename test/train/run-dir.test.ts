import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import {
  checkResumeSettings,
  findResumeTarget,
  prepareFreshRunDir,
  readResolvedConfig,
  updateExtendedSettings,
  writeResolvedConfig,
} from '../../src/train/run-dir.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

let dir = '';
afterEach(removeTempDirs);

function fakeCheckpoint(runDir: string, step: number): void {
  mkdirSync(join(runDir, `checkpoint-${step}`), { recursive: true });
  writeFileSync(
    join(runDir, `checkpoint-${step}`, 'trainer_state.json'),
    JSON.stringify({
      version: 1,
      step,
      total_steps: 10,
      epoch: 0,
      row_in_epoch: 0,
      rng_state: { seed: 1, next_step: step + 1 },
    }),
  );
}

const config = {
  task: 'code_completion',
  dataset: ['/data/train.jsonl'],
  seed: 42,
  learning_rate: 0.002,
  lora_target_modules: 'all-linear',
  fields: { text: 'content' },
  max_steps: null,
  num_epochs: Number.POSITIVE_INFINITY,
  logging_steps: 10,
  output_dir: '/runs/a',
  recipe: { name: 'code_completion' },
  configFile: '/x.yaml',
  sources: { seed: 'default', learning_rate: 'recipe' },
};

describe('run directory', () => {
  test('config.resolved.yaml records every setting with its source and reads back', () => {
    dir = makeTempDir('run');
    writeResolvedConfig(dir, config, config.sources);
    const text = readFileSync(join(dir, 'config.resolved.yaml'), 'utf8');
    expect(text).toContain('learning_rate: 0.002  # recipe\n');
    expect(text).toContain('fields: { text: content }\n');
    expect(text).not.toContain('recipe:');
    const back = readResolvedConfig(dir)!;
    expect(back.learning_rate).toBe(0.002);
    expect(back.num_epochs).toBe(Number.POSITIVE_INFINITY);
    expect(back.dataset).toEqual(['/data/train.jsonl']);
  });

  test('a directory holding a run is refused without --overwrite; --overwrite replaces the run', () => {
    dir = makeTempDir('run');
    const run = join(dir, 'run');
    prepareFreshRunDir(run); // absent: created
    writeResolvedConfig(run, config);
    fakeCheckpoint(run, 5);
    expect(() => prepareFreshRunDir(run)).toThrow(
      /output_dir: .*run already holds a run \(newest checkpoint: step 5\) \(fix: --resume to continue it, --overwrite to replace it/,
    );
    prepareFreshRunDir(run, { overwrite: true });
    expect(readdirSync(run)).toEqual([]);
  });

  test('what a run that crashed before its first checkpoint left is replaced without --overwrite', () => {
    dir = makeTempDir('run');
    const run = join(dir, 'run');
    prepareFreshRunDir(run);
    writeResolvedConfig(run, config);
    writeFileSync(join(run, 'metrics.jsonl'), '{"type":"eval","step":0,"eval_loss":7}\n');
    prepareFreshRunDir(run);
    expect(readdirSync(run)).toEqual([]);
    // a final adapter is work to keep: refused as a run
    writeResolvedConfig(run, config);
    mkdirSync(join(run, 'adapter'));
    expect(() => prepareFreshRunDir(run)).toThrow(/already holds a run \(fix: --resume/);
  });

  test('a non-empty directory that is not a run is refused even with --overwrite', () => {
    dir = makeTempDir('run');
    writeFileSync(join(dir, 'thesis.tex'), 'precious');
    expect(() => prepareFreshRunDir(dir, { overwrite: true })).toThrow(
      /is not empty and does not hold an mft run \(it has thesis.tex\)/,
    );
    expect(existsSync(join(dir, 'thesis.tex'))).toBe(true);
  });

  test('--resume finds the newest checkpoint of a run dir, or takes a checkpoint dir', () => {
    dir = makeTempDir('run');
    fakeCheckpoint(dir, 5);
    fakeCheckpoint(dir, 10);
    expect(
      findResumeTarget(dir, { runDir: '/elsewhere', outputDirIsDefault: false, runPrefix: 'x-' }).checkpoint
        .step,
    ).toBe(10);
    const t = findResumeTarget(join(dir, 'checkpoint-5'), {
      runDir: '/elsewhere',
      outputDirIsDefault: false,
      runPrefix: 'x-',
    });
    expect(t).toEqual({ runDir: dir, checkpoint: { step: 5, dir: join(dir, 'checkpoint-5') } });
    expect(
      findResumeTarget(true, { runDir: dir, outputDirIsDefault: false, runPrefix: 'x-' }).checkpoint.step,
    ).toBe(10);
  });

  test('--resume without a directory finds the newest run of the same task file under the default root', () => {
    dir = makeTempDir('run');
    fakeCheckpoint(join(dir, 'task-20240101-101010'), 3);
    fakeCheckpoint(join(dir, 'task-20240102-090000'), 7);
    fakeCheckpoint(join(dir, 'other-20250101-000000'), 9);
    const t = findResumeTarget(true, {
      runDir: join(dir, 'task-20990101-000000'),
      outputDirIsDefault: true,
      runPrefix: 'task-',
    });
    expect(t.runDir).toBe(join(dir, 'task-20240102-090000'));
    expect(t.checkpoint.step).toBe(7);
    expect(() =>
      findResumeTarget(true, { runDir: join(dir, 'none-1'), outputDirIsDefault: true, runPrefix: 'none-' }),
    ).toThrow(/--resume: no run of this task file/);
  });

  test('--resume of a directory without a checkpoint is a user error', () => {
    dir = makeTempDir('run');
    expect(() => findResumeTarget(dir, { runDir: dir, outputDirIsDefault: false, runPrefix: 'x-' })).toThrow(
      /--resume: .* has no complete checkpoint-<step> folder/,
    );
    expect(() =>
      findResumeTarget(join(dir, 'nope'), { runDir: dir, outputDirIsDefault: false, runPrefix: 'x-' }),
    ).toThrow(/does not exist/);
  });

  test('resuming with changed settings names each changed key; logging and paths may change', () => {
    dir = makeTempDir('run');
    writeResolvedConfig(dir, config);
    checkResumeSettings(dir, { ...config, logging_steps: 1, output_dir: '/moved' });
    expect(() => checkResumeSettings(dir, { ...config, learning_rate: 0.01, seed: 1 })).toThrow(
      /learning_rate: was 0.002 in the run being resumed, now 0.01.*\nseed: was 42 in the run being resumed, now 1/s,
    );
  });

  test('a key added to mft after the run started resumes at its default, not at another value', () => {
    dir = makeTempDir('run');
    const { max_record_bytes: _, ...before } = config as typeof config & { max_record_bytes?: number };
    writeResolvedConfig(dir, before);
    expect(readResolvedConfig(dir)).not.toHaveProperty('max_record_bytes');
    expect(() => checkResumeSettings(dir, { ...before, max_record_bytes: 8 * 2 ** 20 })).not.toThrow();
    expect(() => checkResumeSettings(dir, { ...before, max_record_bytes: 1024 })).toThrow(
      /max_record_bytes: was null in the run being resumed, now 1024/,
    );
  });
});

describe('extending a run on resume', () => {
  test('max_steps / num_epochs may change; config.resolved.yaml records the new value', () => {
    dir = makeTempDir('run');
    writeResolvedConfig(dir, { ...config, max_steps: 10 }, { max_steps: 'task file' });
    expect(() => checkResumeSettings(dir, { ...config, max_steps: 20 })).not.toThrow();
    expect(() => checkResumeSettings(dir, { ...config, max_steps: 20, seed: 1 })).toThrow(/seed: was 42/);
    expect(updateExtendedSettings(dir, { ...config, max_steps: 20 })).toEqual(['max_steps']);
    expect(readResolvedConfig(dir)!.max_steps).toBe(20);
    expect(readFileSync(join(dir, 'config.resolved.yaml'), 'utf8')).toContain(
      'max_steps: 20  # --resume (extended, was 10)',
    );
    expect(readResolvedConfig(dir)!.learning_rate).toBe(0.002);
  });
});
