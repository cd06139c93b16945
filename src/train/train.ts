/**
 * The training loop. One function, read top to bottom (style rule 19):
 *
 *   for each optimizer step:
 *     lr for this step -> the step's micro-batches, trained tokens counted before any backward ->
 *     forward + layer-wise backward of each micro-batch, gradients summed -> clip -> AdamW ->
 *     log -> eval -> checkpoint -> stop (max_steps / num_epochs, or SIGINT / SIGTERM)
 *
 * The loss of a step is the token-weighted mean over its whole effective batch:
 *
 *   loss = sum over micro-batches of sum of token losses / trained tokens of the step
 *
 * (not a mean of micro-batch means), so 4 micro-batches of 1 row give the gradient of 1 of 4.
 * Each micro-batch's gradient is taken of lossScale * lossSum with lossScale = 1 / step tokens,
 * which is why the tokens are counted first.
 *
 * The model side comes in as a `Trainable` (LoRA variables, a gradient function, eval, adapter
 * files) and the data as packed splits, so the loop runs the same on the real model (run.ts) and
 * on small stand-ins in tests.
 */
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../model/batch.js';
import { displayPath, MftError, mixSeed } from '../util/index.js';
import { AdamW, type AdamWConfig } from './adamw.js';
import {
  type CheckpointInfo,
  latestCheckpoint,
  listCheckpoints,
  readOptimizerState,
  readTrainerState,
  removeTemporaries,
  rotateCheckpoints,
  saveCheckpoint,
  TRAINER_STATE_VERSION,
  type TrainerState,
} from './checkpoint.js';
import { clipByGlobalNorm } from './clip.js';
import { DataCursor, type TrainSplit, totalSteps, trainedTokens } from './data-cursor.js';
import { appendMetrics, type EvalRow, readMetrics, truncateMetrics } from './metrics.js';
import type { Progress } from './progress.js';
import { FINAL_ADAPTER, METRICS_FILE } from './run-dir.js';
import { checkSchedule, learningRate, type ScheduleConfig } from './schedule.js';
import { type StopSignalName, watchStopSignals, yieldToEventLoop } from './signals.js';
import { removeDirAtomically, writeDirAtomically } from './write-dir.js';

/** The task keys the loop reads (a `TaskConfig` has them all). */
export interface TrainSettings extends ScheduleConfig, AdamWConfig {
  readonly seed: number;
  readonly micro_batch_size: number;
  readonly gradient_accumulation_steps: number;
  readonly num_epochs: number;
  readonly max_steps: number | null;
  readonly max_grad_norm: number | null;
  readonly eval_steps: number | null;
  readonly eval_max_samples: number | null;
  readonly save_steps: number | null;
  readonly save_total_limit: number | null;
  readonly logging_steps: number;
}

/** Loss and gradients of one micro-batch (what `lossAndGrads` of src/lora returns). */
export interface MicroBatchGrads {
  /** Sum of the token losses (unscaled). */
  lossSum: number;
  /** Tokens that carry loss. */
  count: number;
  /** d(lossScale * lossSum) / d(variable), keyed like `variables`; the loop disposes them. */
  grads: Map<string, tf.Tensor>;
}

/** The model side of a run: trainable LoRA weights and what the loop asks of them. */
export interface Trainable {
  /** The LoRA weights, keyed by PEFT tensor name. */
  readonly variables: ReadonlyMap<string, tf.Variable>;
  /** Loss and gradients of one micro-batch (dropout masks drawn from `dropoutSeed`). */
  lossAndGrads(batch: Batch, opts: { lossScale: number; dropoutSeed: number }): Promise<MicroBatchGrads>;
  /**
   * Optional: loss and summed gradients of a whole step at once (micro-batch m draws its dropout
   * masks from `dropoutSeeds[m]`); workers split the step's rows this way. Used when present.
   */
  stepLossAndGrads?(
    batches: readonly Batch[],
    opts: { lossScale: number; dropoutSeeds: readonly number[] },
  ): Promise<MicroBatchGrads>;
  /** Loss sum of a batch with the current weights, without dropout or gradients. */
  evalLoss(batch: Batch): Promise<{ lossSum: number; count: number }>;
  /**
   * Read the current adapter (asynchronously: on a GPU backend a read is a round trip) and return
   * what writes it (PEFT layout, with mft_training.json) into a directory.
   */
  adapterWriter(): Promise<(dir: string) => void>;
  /** Set the variables to the adapter saved in `dir` (a checkpoint being resumed). */
  loadAdapter(dir: string): void;
}

/** A validation split: rows in a fixed order. */
export interface EvalSplit {
  readonly numRows: number;
  batch(rowIndices: number[]): Batch;
}

export interface TrainData {
  train: TrainSplit;
  validation: EvalSplit | null;
  /** sequence_len: positions per row, for tokens/s. */
  seqLen: number;
}

/** Where the loop writes and what it shows. */
export interface LoopContext {
  runDir: string;
  /** The checkpoint to continue from (its settings already checked), or null for a fresh run. */
  resumeFrom: CheckpointInfo | null;
  progress: Progress;
  /** Install SIGINT / SIGTERM handlers for the run (the CLI does). */
  handleSignals: boolean;
  /** Hash of the dataset (recorded in each checkpoint, checked on resume); null when unknown. */
  dataHash?: string | null;
  /** Resume even when the dataset hash differs from the checkpoint's. */
  allowDataChange?: boolean;
}

/** How a run ended. */
export interface LoopResult {
  runDir: string;
  /** The final adapter directory (null when the run was interrupted). */
  adapterDir: string | null;
  /** Newest checkpoint written. */
  lastCheckpoint: string | null;
  step: number;
  totalSteps: number;
  /** Loss of the last step (NaN if none ran in this process). */
  lastLoss: number;
  /** Validation loss of the base model (step 0), when evaluated. */
  baseEvalLoss: number | null;
  /** Validation loss at the last evaluation. */
  finalEvalLoss: number | null;
  bestEvalLoss: number | null;
  bestStep: number | null;
  trainedTokens: number;
  processedTokens: number;
  /** Seconds of the whole run, across resumes. */
  elapsed: number;
  /** The signal that stopped the run early, or null. */
  interrupted: StopSignalName | null;
}

/**
 * Train the LoRA weights of `model` on `data` until max_steps / num_epochs or a stop signal.
 * @param cfg the task settings (a TaskConfig)
 * @param model trainable weights and their gradient function
 * @param data packed train / validation splits
 * @param ctx run directory, checkpoint to resume, progress display
 * @example const result = await trainLoop(config, trainable, data, { runDir, resumeFrom: null, progress, handleSignals: true });
 */
export async function trainLoop(
  cfg: TrainSettings,
  model: Trainable,
  data: TrainData,
  ctx: LoopContext,
): Promise<LoopResult> {
  const { runDir, progress } = ctx;
  const { train: split, validation } = data;
  const metricsPath = join(runDir, METRICS_FILE);
  const total = totalSteps(cfg, split.numRows, cfg.micro_batch_size, cfg.gradient_accumulation_steps);
  checkSchedule(cfg, total);
  removeTemporaries(runDir);

  const optimizer = new AdamW(model.variables, cfg);
  let state = ctx.resumeFrom
    ? resumeState(cfg, model, optimizer, ctx, total)
    : { ...freshState(cfg, total), ...(ctx.dataHash ? { data_hash: ctx.dataHash } : {}) };
  const cursor = new DataCursor(
    split,
    cfg.seed,
    cfg.micro_batch_size,
    cfg.gradient_accumulation_steps,
    state.epoch,
    state.row_in_epoch,
  );
  const evalRows = validation ? firstRows(validation.numRows, cfg.eval_max_samples) : [];
  const clockStart = performance.now() - state.elapsed * 1000;
  const elapsed = () => (performance.now() - clockStart) / 1000;
  const result: LoopResult = {
    runDir,
    adapterDir: null,
    lastCheckpoint: latestCheckpoint(runDir)?.dir ?? null,
    step: state.step,
    totalSteps: total,
    lastLoss: Number.NaN,
    baseEvalLoss: baseEvalFromMetrics(metricsPath),
    finalEvalLoss: null,
    bestEvalLoss: state.best_eval_loss,
    bestStep: state.best_step,
    trainedTokens: state.trained_tokens,
    processedTokens: state.processed_tokens,
    elapsed: state.elapsed,
    interrupted: null,
  };

  const evaluate = async (step: number): Promise<number | null> => {
    if (!validation || evalRows.length === 0) return null;
    const r = await evalLoss(model, validation, evalRows, cfg.micro_batch_size);
    if (r === null) return null;
    const row: EvalRow = {
      type: 'eval',
      step,
      eval_loss: r.loss,
      eval_perplexity: Math.exp(r.loss),
      eval_tokens: r.tokens,
      eval_rows: evalRows.length,
      elapsed: round(elapsed(), 3),
    };
    appendMetrics(metricsPath, row);
    progress.eval(step, r.loss);
    result.finalEvalLoss = r.loss;
    return r.loss;
  };
  const checkpoint = async (evalLossHere: number | null): Promise<void> => {
    state.elapsed = round(elapsed(), 3);
    state.eval_loss = evalLossHere;
    result.lastCheckpoint = saveCheckpoint(runDir, {
      writeAdapter: await model.adapterWriter(),
      optimizer: await optimizer.state(),
      state,
    });
    rotateCheckpoints(runDir, cfg.save_total_limit, state.best_step);
    progress.note(`saved ${displayPath(result.lastCheckpoint)}`);
  };

  const stop = ctx.handleSignals
    ? watchStopSignals((s) =>
        // no step number here: the signal may land before or after the step in progress is done;
        // the note after the save names the checkpoint actually written
        progress.note(
          `${s}: stopping after the step in progress and saving a checkpoint (${s} again stops at once)`,
        ),
      )
    : null;
  progress.start(total, state.step);
  try {
    // the base model's validation loss: the reference the run is measured against (B = 0 at step 0)
    if (state.step === 0) result.baseEvalLoss = await evaluate(0);

    let window = { positions: 0, seconds: 0 };
    while (state.step < total) {
      const step = state.step + 1; // 1-based number of this update
      const t0 = performance.now();

      // 1) learning rate of this step
      const lr = learningRate(cfg, step - 1, total);

      // 2) the step's micro-batches, as packed rows
      const batches = cursor.next().microBatches.map((rows) => split.batch(rows));

      // 3) forward + layer-wise backward of each micro-batch: the gradient of (step loss sum / step
      //    tokens), summed over micro-batches, with the tokens counted before any backward pass
      const { loss, tokens: stepTokens, grads } = await stepGradients(model, batches, cfg.seed, step);
      let gradNorm = 0;
      try {
        if (stepTokens === 0) {
          // rows with no token that carries loss (e.g. prompt-only pieces): nothing to learn from
          progress.note(`step ${step}: no token of its rows carries loss; no update`);
        } else {
          // 4) clip by global norm (the norm before clipping is logged)
          gradNorm = await clipByGlobalNorm(grads, cfg.max_grad_norm);

          // 5) a non-finite loss or gradient stops the run before it reaches the weights
          if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
            throw nonFiniteError(step, loss, gradNorm, cfg, result.lastCheckpoint);
          }

          // 6) AdamW (decoupled weight decay) on the LoRA weights
          optimizer.update(grads, lr);
          result.lastLoss = loss;
        }
      } finally {
        tf.dispose([...grads.values()]);
      }

      // the run's position after this step
      const seconds = (performance.now() - t0) / 1000;
      const positions = batches.reduce((n, b) => n + b.batchSize * b.seqLen, 0);
      state = {
        ...state,
        step,
        epoch: cursor.epoch,
        row_in_epoch: cursor.rowInEpoch,
        rng_state: { seed: cfg.seed, next_step: step + 1 },
        eval_loss: null,
        trained_tokens: state.trained_tokens + stepTokens,
        processed_tokens: state.processed_tokens + positions,
      };
      window = { positions: window.positions + positions, seconds: window.seconds + seconds };

      // 7) log: a metrics row every logging_steps (and the first and last step)
      const logged = (step % cfg.logging_steps === 0 || step === 1 || step === total) && stepTokens > 0;
      const report = {
        step,
        totalSteps: total,
        epoch: cursor.epochFloat,
        loss,
        lr,
        gradNorm,
        tokensPerSecond: window.positions / Math.max(window.seconds, 1e-9),
      };
      progress.step(report, logged);
      if (logged) {
        appendMetrics(metricsPath, {
          type: 'train',
          step,
          loss,
          lr,
          grad_norm: gradNorm,
          tokens: stepTokens,
          tokens_per_second: round(report.tokensPerSecond, 1),
          elapsed: round(elapsed(), 3),
          epoch: round(cursor.epochFloat, 4),
        });
        window = { positions: 0, seconds: 0 };
      }

      // 8) eval every eval_steps and at the end
      const isLast = step === total;
      let evalHere: number | null = null;
      if ((cfg.eval_steps != null && step % cfg.eval_steps === 0) || isLast) evalHere = await evaluate(step);
      const improved =
        evalHere !== null && (state.best_eval_loss === null || evalHere < state.best_eval_loss);
      if (improved) state = { ...state, best_eval_loss: evalHere, best_step: step };

      // 9) checkpoint every save_steps, at the end, at a new best, and when asked to stop
      await yieldToEventLoop(); // lets a SIGINT / SIGTERM handler run
      const stopping = stop?.received ?? null;
      if ((cfg.save_steps != null && step % cfg.save_steps === 0) || isLast || improved || stopping) {
        await checkpoint(evalHere);
      }

      // 10) stop: a signal ends the run here, with its checkpoint written
      if (stopping) {
        progress.note(
          `${stopping}: stopped after step ${step}; saved ${displayPath(result.lastCheckpoint!)}`,
        );
        result.interrupted = stopping;
        break;
      }
    }

    if (state.step >= total) {
      result.adapterDir = join(runDir, FINAL_ADAPTER);
      writeDirAtomically(result.adapterDir, await model.adapterWriter());
    }
  } finally {
    progress.stop();
    stop?.dispose();
    optimizer.dispose();
  }
  return {
    ...result,
    step: state.step,
    bestEvalLoss: state.best_eval_loss,
    bestStep: state.best_step,
    trainedTokens: state.trained_tokens,
    processedTokens: state.processed_tokens,
    elapsed: round(elapsed(), 3),
  };
}

/**
 * Loss and summed gradients of one optimizer step. The step's trained tokens are counted first,
 * so each micro-batch's gradient is taken of lossSum / stepTokens and the sum over micro-batches
 * is the gradient of the token-weighted mean loss of the whole step.
 * @param model the trainable side
 * @param batches the step's micro-batches
 * @param seed run seed: micro-batch m of step s draws its dropout masks from mixSeed(seed, s, m)
 * @param step 1-based step number
 * @returns loss (token-weighted mean; NaN and no grads when no token carries loss), tokens (trained
 *   tokens of the step), grads (caller disposes)
 * @example const { loss, grads } = await stepGradients(trainable, batches, 42, 1);
 */
export async function stepGradients(
  model: Trainable,
  batches: readonly Batch[],
  seed: number,
  step: number,
): Promise<{ loss: number; tokens: number; grads: Map<string, tf.Tensor> }> {
  const tokens = batches.reduce((n, b) => n + trainedTokens(b), 0);
  if (tokens === 0) return { loss: Number.NaN, tokens, grads: new Map() };
  const lossScale = 1 / tokens;
  if (model.stepLossAndGrads) {
    const dropoutSeeds = batches.map((_, micro) => mixSeed(seed, step, micro));
    const r = await model.stepLossAndGrads(batches, { lossScale, dropoutSeeds });
    if (r.count !== tokens) {
      tf.dispose([...r.grads.values()]);
      throw new Error(
        `stepLossAndGrads counted ${r.count} tokens in step ${step}, its labels have ${tokens}`,
      );
    }
    return { loss: r.lossSum / tokens, tokens, grads: r.grads };
  }
  const grads = new Map<string, tf.Tensor>();
  let lossSum = 0;
  try {
    for (const [micro, batch] of batches.entries()) {
      const r = await model.lossAndGrads(batch, { lossScale, dropoutSeed: mixSeed(seed, step, micro) });
      accumulate(grads, r.grads);
      lossSum += r.lossSum;
      if (r.count !== trainedTokens(batch)) {
        throw new Error(
          `lossAndGrads counted ${r.count} tokens in micro-batch ${micro} of step ${step}, its labels have ${trainedTokens(batch)}`,
        );
      }
    }
  } catch (e) {
    tf.dispose([...grads.values()]);
    throw e;
  }
  return { loss: lossSum / tokens, tokens, grads };
}

/** trainer_state of a run that has not made a step yet. */
function freshState(cfg: TrainSettings, total: number): TrainerState {
  return {
    version: TRAINER_STATE_VERSION,
    step: 0,
    total_steps: total,
    epoch: 0,
    row_in_epoch: 0,
    rng_state: { seed: cfg.seed, next_step: 1 },
    eval_loss: null,
    best_eval_loss: null,
    best_step: null,
    elapsed: 0,
    trained_tokens: 0,
    processed_tokens: 0,
  };
}

/**
 * Load a checkpoint into the weights and optimizer, drop what the run did after it (later
 * checkpoints, the final adapter, metrics rows), and return its state.
 */
function resumeState(
  cfg: TrainSettings,
  model: Trainable,
  optimizer: AdamW,
  ctx: LoopContext,
  total: number,
): TrainerState {
  const from = ctx.resumeFrom!;
  const state = readTrainerState(from.dir);
  const where = displayPath(join(from.dir, 'trainer_state.json'));
  if (state.rng_state.seed !== cfg.seed) {
    throw new MftError({
      where,
      message: `the run used seed ${state.rng_state.seed}, the settings now give ${cfg.seed}`,
      fix: 'resume with the same settings and dataset, or start a new run',
    });
  }
  if (ctx.dataHash && state.data_hash && state.data_hash !== ctx.dataHash) {
    if (!ctx.allowDataChange) {
      throw new MftError({
        where,
        message: `the dataset changed since this checkpoint (its tokenized content hash was ${state.data_hash.slice(0, 12)}, now ${ctx.dataHash.slice(0, 12)})`,
        fix: 'restore the data the run trained on, or pass --allow-data-change to continue on the new data',
      });
    }
    ctx.progress.note(
      `the dataset changed since ${basename(from.dir)}; continuing on the new data (--allow-data-change)`,
    );
  }
  if (ctx.dataHash) state.data_hash = ctx.dataHash;
  if (state.total_steps !== total) {
    // a longer run (larger max_steps / num_epochs, or new data with --allow-data-change): the
    // schedule is recomputed for the new length from here on
    if (total < Math.max(state.step, 1) || (total < state.total_steps && !ctx.allowDataChange)) {
      throw new MftError({
        where,
        message: `the run had ${state.total_steps} steps (${state.step} done), the settings and data now give ${total}`,
        fix: 'resume with the same or a larger max_steps / num_epochs, or start a new run',
      });
    }
    ctx.progress.note(
      `the run now has ${total} steps (was ${state.total_steps}); the learning-rate schedule is recomputed for ${total}`,
    );
    state.total_steps = total;
  }
  model.loadAdapter(from.dir);
  const opt = readOptimizerState(join(from.dir, 'optimizer.safetensors'));
  if (opt.step !== state.step) {
    throw new MftError({
      where: displayPath(join(from.dir, 'optimizer.safetensors')),
      message: `optimizer step ${opt.step} does not match trainer_state.json step ${state.step}`,
      fix: 'resume from another checkpoint of the run',
    });
  }
  optimizer.load(opt, displayPath(join(from.dir, 'optimizer.safetensors')));
  // the run continues from here: what it did after this checkpoint is replaced
  for (const c of listCheckpoints(ctx.runDir)) if (c.step > state.step) removeDirAtomically(c.dir);
  removeDirAtomically(join(ctx.runDir, FINAL_ADAPTER));
  truncateMetrics(join(ctx.runDir, METRICS_FILE), state.step);
  return state;
}

/** Sum `add` into `acc` (both keyed by variable); the tensors of `add` are consumed. */
function accumulate(acc: Map<string, tf.Tensor>, add: Map<string, tf.Tensor>): void {
  for (const [key, g] of add) {
    const prev = acc.get(key);
    if (prev) {
      acc.set(key, tf.add(prev, g));
      prev.dispose();
      g.dispose();
    } else {
      acc.set(key, g);
    }
  }
}

/** The first `max` row indices of `n` (all when max is null): the same rows at every evaluation. */
function firstRows(n: number, max: number | null): number[] {
  return Array.from({ length: max == null ? n : Math.min(n, max) }, (_, i) => i);
}

/** Mean token loss over the given validation rows, in micro-batches. */
async function evalLoss(
  model: Trainable,
  split: EvalSplit,
  rows: number[],
  batchSize: number,
): Promise<{ loss: number; tokens: number } | null> {
  let lossSum = 0;
  let tokens = 0;
  for (let i = 0; i < rows.length; i += batchSize) {
    const r = await model.evalLoss(split.batch(rows.slice(i, i + batchSize)));
    lossSum += r.lossSum;
    tokens += r.count;
  }
  return tokens > 0 ? { loss: lossSum / tokens, tokens } : null;
}

/** The step-0 eval loss of a run's metrics (kept across resumes). */
function baseEvalFromMetrics(path: string): number | null {
  const row = readMetrics(path).find((r) => r.type === 'eval' && r.step === 0) as EvalRow | undefined;
  return row?.eval_loss ?? null;
}

function nonFiniteError(
  step: number,
  loss: number,
  gradNorm: number,
  cfg: TrainSettings,
  lastCheckpoint: string | null,
): MftError {
  const what = Number.isFinite(loss) ? `the gradient norm is ${gradNorm}` : `the loss is ${loss}`;
  const kept = lastCheckpoint ? `; the last good checkpoint is ${displayPath(lastCheckpoint)}` : '';
  return new MftError({
    where: `step ${step}`,
    message: `${what}: training stopped before this update${kept}`,
    fix: `lower learning_rate (now ${cfg.learning_rate})${cfg.max_grad_norm == null ? ' or set max_grad_norm (e.g. 1.0)' : ''} and start a new run`,
  });
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
