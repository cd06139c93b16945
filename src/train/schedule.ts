/**
 * Learning-rate schedules: `constant`, `linear` and `cosine`, each after an optional linear warmup,
 * with a floor at `min_lr_ratio * learning_rate` for the decaying ones. The shapes follow HF
 * transformers' `get_{constant,linear,cosine}_schedule_with_warmup` and `cosine_with_min_lr`
 * (transformers/optimization.py), with one difference: warmup starts at `lr / warmup_steps` on
 * the first step instead of 0, so no optimizer step is wasted with a zero learning rate.
 */
import { MftError } from '../util/index.js';

export type LrSchedulerName = 'constant' | 'linear' | 'cosine';

/** The slice of the task config a schedule reads. */
export interface ScheduleConfig {
  readonly learning_rate: number;
  readonly lr_scheduler: LrSchedulerName;
  /** Number of warmup steps; 0 = use `warmup_ratio` (at most one of the two is set). */
  readonly warmup_steps: number;
  /** Fraction of the total steps used for warmup (when `warmup_steps` is 0). */
  readonly warmup_ratio: number;
  /** Floor of the decay as a fraction of `learning_rate` (0 = decay to zero). */
  readonly min_lr_ratio: number;
}

/** Warmup length in steps: `warmup_steps` if > 0, else `ceil(warmup_ratio * totalSteps)` as HF does. */
export function warmupStepsFor(cfg: ScheduleConfig, totalSteps: number): number {
  if (cfg.warmup_steps > 0) return cfg.warmup_steps;
  return Math.ceil(cfg.warmup_ratio * totalSteps);
}

/**
 * Learning rate of optimizer step `step` (0-based: the first update uses step 0).
 * @param cfg learning_rate, lr_scheduler, warmup_steps | warmup_ratio, min_lr_ratio
 * @param step 0-based index of the update being made, in [0, totalSteps)
 * @param totalSteps number of optimizer steps of the whole run (> 0)
 * @example
 *   learningRate({learning_rate: 1e-3, lr_scheduler: 'cosine', warmup_steps: 10, warmup_ratio: 0, min_lr_ratio: 0}, 0, 100) // 1e-4
 */
export function learningRate(cfg: ScheduleConfig, step: number, totalSteps: number): number {
  if (!(totalSteps > 0) || step < 0 || !Number.isInteger(step)) {
    throw new Error(
      `Arguments passed to 'learningRate' must have totalSteps > 0 and an integer step >= 0, got step ${step}, totalSteps ${totalSteps}`,
    );
  }
  const peak = cfg.learning_rate;
  const warmup = warmupStepsFor(cfg, totalSteps);
  const floor = cfg.min_lr_ratio;

  // 1) linear warmup: lr * (step + 1) / warmup, reaching the peak on the last warmup step
  if (step < warmup) return (peak * (step + 1)) / warmup;
  if (cfg.lr_scheduler === 'constant') return peak;

  // progress through the decay phase, 0 on the first step after warmup, 1 after the last step
  const decaySteps = Math.max(1, totalSteps - warmup);
  const progress = Math.min(1, (step - warmup) / decaySteps);
  // 2) decay from 1 to 0: linear, or half a cosine period
  const decay = cfg.lr_scheduler === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  // 3) floor at min_lr_ratio * lr: the decay is rescaled to end at the floor
  return peak * (floor + (1 - floor) * decay);
}

/** Reject a schedule that cannot run (the config schema checks ranges; this checks against the run length). */
export function checkSchedule(cfg: ScheduleConfig, totalSteps: number): void {
  const warmup = warmupStepsFor(cfg, totalSteps);
  if (warmup > totalSteps) {
    throw new MftError({
      where: 'warmup_steps',
      message: `${warmup} warmup steps but the run has only ${totalSteps} optimizer steps`,
      fix: `set warmup_steps below ${totalSteps} or use warmup_ratio`,
    });
  }
}
