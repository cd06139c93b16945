import { describe, expect, test } from 'vitest';
import {
  checkSchedule,
  learningRate,
  type ScheduleConfig,
  warmupStepsFor,
} from '../../src/train/schedule.js';

const base: ScheduleConfig = {
  learning_rate: 1e-3,
  lr_scheduler: 'cosine',
  warmup_steps: 10,
  warmup_ratio: 0,
  min_lr_ratio: 0,
};

describe('learningRate', () => {
  test('linear warmup reaches the peak on the last warmup step', () => {
    // (step + 1) / warmup * lr, by hand
    expect(learningRate(base, 0, 100)).toBeCloseTo(1e-4, 15);
    expect(learningRate(base, 4, 100)).toBeCloseTo(5e-4, 15);
    expect(learningRate(base, 9, 100)).toBeCloseTo(1e-3, 15);
  });

  test('cosine decays from the peak through half to the floor', () => {
    // after 10 warmup steps, 90 decay steps: progress = (step - 10) / 90
    expect(learningRate(base, 10, 100)).toBeCloseTo(1e-3, 15);
    expect(learningRate(base, 55, 100)).toBeCloseTo(0.5e-3, 15); // progress 0.5: cos(pi/2) = 0
    const p = 80 / 90;
    expect(learningRate(base, 90, 100)).toBeCloseTo(1e-3 * 0.5 * (1 + Math.cos(Math.PI * p)), 15);
    // past the end (never asked by the loop) stays at the floor
    expect(learningRate(base, 100, 100)).toBeCloseTo(0, 15);
  });

  test('min_lr_ratio rescales the decay to end at the floor', () => {
    const cfg = { ...base, min_lr_ratio: 0.1 };
    expect(learningRate(cfg, 10, 100)).toBeCloseTo(1e-3, 15);
    expect(learningRate(cfg, 55, 100)).toBeCloseTo(1e-4 + 0.9e-3 * 0.5, 15);
    expect(learningRate(cfg, 100, 100)).toBeCloseTo(1e-4, 15);
  });

  test('linear decays linearly to zero', () => {
    const cfg = { ...base, lr_scheduler: 'linear' as const, warmup_steps: 0 };
    expect(learningRate(cfg, 0, 4)).toBeCloseTo(1e-3, 15);
    expect(learningRate(cfg, 1, 4)).toBeCloseTo(0.75e-3, 15);
    expect(learningRate(cfg, 3, 4)).toBeCloseTo(0.25e-3, 15);
  });

  test('constant stays at the peak after warmup and ignores the floor', () => {
    const cfg = { ...base, lr_scheduler: 'constant' as const, warmup_steps: 2, min_lr_ratio: 0.5 };
    expect(learningRate(cfg, 0, 50)).toBeCloseTo(0.5e-3, 15);
    expect(learningRate(cfg, 1, 50)).toBeCloseTo(1e-3, 15);
    expect(learningRate(cfg, 49, 50)).toBeCloseTo(1e-3, 15);
  });

  test('warmup_ratio rounds up to whole steps, as HF does', () => {
    const cfg: ScheduleConfig = { ...base, warmup_steps: 0, warmup_ratio: 0.05 };
    expect(warmupStepsFor(cfg, 110)).toBe(6); // ceil(5.5)
    expect(learningRate(cfg, 0, 110)).toBeCloseTo(1e-3 / 6, 15);
    expect(warmupStepsFor({ ...cfg, warmup_ratio: 0 }, 110)).toBe(0);
  });

  test('rejects a step outside the run', () => {
    expect(() => learningRate(base, -1, 10)).toThrow(/Arguments passed to 'learningRate'/);
    expect(() => learningRate(base, 0, 0)).toThrow(/totalSteps > 0/);
  });

  test('more warmup steps than the run has is a user error naming the key', () => {
    expect(() => checkSchedule({ ...base, warmup_steps: 20 }, 10)).toThrow(
      /warmup_steps: 20 warmup steps but the run has only 10 optimizer steps/,
    );
  });
});
