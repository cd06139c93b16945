/**
 * 6) The main job, `configs/code_completion.yaml`, through the real `train()` with `--set`-style
 * overrides (fewer steps), in a fresh process so start-up is what a user pays. Wall time by phase,
 * read from the progress events `train()` emits (no hooks inside the trainer):
 *
 *   start-up    process start + module import + task file + backend + tokenizer (timed here
 *               before train(), whose own calls are then warm)
 *   data        train() start -> the dataset summary lines (minus its own tokenizer load)
 *   model load  the summary lines -> progress.start (frozen base, LoRA init, run folder)
 *   training    intervals that end in a step event
 *   evaluation  intervals that end in an eval event (the step-0 base eval, eval_steps, the end)
 *   saving      intervals that end in a "saved" note, and the final adapter (-> progress.stop)
 *
 * The full job's time is projected from the measured step and eval times and its step count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRelative } from '../lib/machine.js';
import { sig, type Timing, timeAsync } from '../lib/measure.js';

export interface MainJobJob {
  kind: 'main-job';
  configFile: string;
  backend: string;
  /** `--set` overrides (max_steps=..., eval_max_samples=...). */
  set: string[];
}

export interface MainJobResult {
  kind: 'main-job';
  configFile: string;
  backend: string;
  set: string[];
  steps: number;
  microBatchSize: number;
  seqLen: number;
  /** Seconds by phase. */
  phases: {
    startup: number;
    data: number;
    modelLoad: number;
    training: number;
    evaluation: number;
    saving: number;
    other: number;
  };
  startupParts: { process: number; import: number; config: number; backend: number; tokenizer: number };
  /** From process start (performance.now() counts from it; includes Node and tsx starting up). */
  totalWallS: number;
  train: Timing;
  processedTokens: number;
  trainedTokens: number;
  /** Positions per second of the training phase (what the progress bar shows). */
  trainTokensPerS: number;
  /** Processed positions / the whole job's wall time. */
  overallTokensPerS: number;
  evals: number;
  baseEvalLoss: number | null;
  finalEvalLoss: number | null;
  lastLoss: number;
  /** The job as configured (no max_steps override), projected from the measured step and eval times. */
  projected: { steps: number; evals: number; trainingS: number; evaluationS: number; totalS: number };
}

type EventKind = 'step' | 'eval' | 'saved' | 'note' | 'start' | 'stop';

/** Run train() once in a temporary run / cache folder (removed afterwards). */
export async function runMainJob(job: MainJobJob): Promise<MainJobResult> {
  const booted = performance.now() / 1000; // Node, tsx and the worker itself starting
  const tmp = mkdtempSync(join(tmpdir(), 'mft-bench-job-'));
  try {
    const imported = await timeAsync(async () => ({
      config: await import('../../src/config/index.js'),
      train: await import('../../src/train/index.js'),
      backend: await import('../../src/backend/index.js'),
      tokenizer: await import('../../src/tokenizer/index.js'),
      data: await import('../../src/data/index.js'),
    }));
    const m = imported.value;
    const set = [...job.set, `backend=${job.backend}`, `cache_dir=${join(tmp, 'cache')}`];
    const loaded = await timeAsync(() => m.config.loadTaskConfig(job.configFile, { set }));
    const config = loaded.value;
    const backend = await timeAsync(() => m.backend.initBackend(config.backend));
    const tokenizer = await timeAsync(() => m.tokenizer.loadTokenizer(config.base_model));

    const events: { kind: EventKind; t: number }[] = [];
    const mark = (kind: EventKind) => events.push({ kind, t: performance.now() });
    const trainStart = performance.now();
    const trained = await timeAsync(() =>
      m.train.train(config, {
        outputDir: join(tmp, 'run'),
        handleSignals: false,
        progress: {
          start: () => mark('start'),
          step: () => mark('step'),
          eval: () => mark('eval'),
          note: (line) => mark(line.startsWith('saved ') ? 'saved' : 'note'),
          stop: () => mark('stop'),
        },
      }),
    );
    const result = trained.value;
    const end = performance.now();

    // phases from the events
    const startIdx = events.findIndex((e) => e.kind === 'start');
    const dataEnd = [...events.slice(0, startIdx)].reverse().find((e) => e.kind === 'note')?.t ?? trainStart;
    const data = Math.max(0, (dataEnd - trainStart) / 1000 - tokenizer.wallS);
    const modelLoad = (events[startIdx]!.t - dataEnd) / 1000;
    const sums = { step: 0, eval: 0, saved: 0, stop: 0, other: 0 };
    let stepTimes = 0;
    let evalCount = 0;
    for (let i = startIdx + 1; i < events.length; i++) {
      const e = events[i]!;
      const dt = (e.t - events[i - 1]!.t) / 1000;
      if (e.kind === 'step') {
        sums.step += dt;
        stepTimes++;
      } else if (e.kind === 'eval') {
        sums.eval += dt;
        evalCount++;
      } else if (e.kind === 'saved' || e.kind === 'stop') sums.saved += dt;
      else sums.other += dt;
    }
    sums.other += (end - (events[events.length - 1]?.t ?? end)) / 1000;
    const startup = booted + imported.wallS + loaded.wallS + backend.wallS + tokenizer.wallS;

    // the job as configured: its step count and eval count from the (cached) packed data
    const unset = await m.config.loadTaskConfig(job.configFile, {
      set: [`backend=${job.backend}`, `cache_dir=${join(tmp, 'cache')}`],
    });
    const ds = await m.data.buildDataset(unset, tokenizer.value, { log: () => {} });
    const fullSteps = m.train.totalSteps(
      unset,
      ds.train.numRows,
      unset.micro_batch_size,
      unset.gradient_accumulation_steps,
    );
    // the base eval at step 0, every eval_steps, and the last step (once when it is also an eval step)
    const E = unset.eval_steps;
    const fullEvals =
      ds.validation === null ? 0 : 1 + (E ? Math.floor(fullSteps / E) + (fullSteps % E === 0 ? 0 : 1) : 1);
    const perStep = sums.step / Math.max(1, stepTimes);
    const perEval = sums.eval / Math.max(1, evalCount);
    // the job as configured may have other micro-batches and rows than the overrides: scale by the
    // positions per step and per eval
    const positions = (c: typeof config) =>
      c.micro_batch_size * c.gradient_accumulation_steps * c.sequence_len;
    const evalRows = (c: typeof config) =>
      Math.min(c.eval_max_samples ?? Number.POSITIVE_INFINITY, ds.validation?.numRows ?? 0);
    const stepScale = positions(unset) / positions(config);
    const evalScale =
      (evalRows(unset) * unset.sequence_len) / Math.max(1, evalRows(config) * config.sequence_len);
    const projTraining = perStep * stepScale * fullSteps;
    const projEval = perEval * evalScale * fullEvals;
    const fixed = startup + data + modelLoad + sums.saved + sums.other;

    const r = (x: number) => sig(x);
    return {
      kind: 'main-job',
      configFile: repoRelative(job.configFile),
      backend: result.backend,
      set: job.set,
      steps: result.step,
      microBatchSize: config.micro_batch_size,
      seqLen: config.sequence_len,
      phases: {
        startup: r(startup),
        data: r(data),
        modelLoad: r(modelLoad),
        training: r(sums.step),
        evaluation: r(sums.eval),
        saving: r(sums.saved),
        other: r(sums.other),
      },
      startupParts: {
        process: r(booted),
        import: r(imported.wallS),
        config: r(loaded.wallS),
        backend: r(backend.wallS),
        tokenizer: r(tokenizer.wallS),
      },
      totalWallS: r(end / 1000),
      train: { wallS: r(trained.wallS), cpuS: r(trained.cpuS) },
      processedTokens: result.processedTokens,
      trainedTokens: result.trainedTokens,
      trainTokensPerS: r(result.processedTokens / Math.max(1e-9, sums.step)),
      overallTokensPerS: r(result.processedTokens / (end / 1000)),
      evals: evalCount,
      baseEvalLoss: result.baseEvalLoss === null ? null : r(result.baseEvalLoss),
      finalEvalLoss: result.finalEvalLoss === null ? null : r(result.finalEvalLoss),
      lastLoss: r(result.lastLoss),
      projected: {
        steps: fullSteps,
        evals: fullEvals,
        trainingS: r(projTraining),
        evaluationS: r(projEval),
        totalS: r(fixed + projTraining + projEval),
      },
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
