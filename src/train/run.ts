/**
 * `train(config)`: a whole run, as a script of its stages (torchtune's recipe shape):
 *
 *   run directory (fresh or resumed) -> backend -> tokenizer -> packed data -> frozen base ->
 *   LoRA -> config.resolved.yaml -> the loop (train.ts) -> summary
 */
import { basename, extname, resolve } from 'node:path';
import { initBackend } from '../backend/index.js';
import { type TaskConfig, taskValues } from '../config/index.js';
import { buildDataset } from '../data/index.js';
import { createLora, type MftTrainingInfo, resolveTargets } from '../lora/index.js';
import { checkVocabulary, type LoadedModel, loadModel, trainingWeights } from '../model/index.js';
import {
  LoraMirror,
  openSharedModel,
  parallelTrainable,
  resolveNumWorkers,
  shareModel,
  type WorkerCount,
  WorkerPool,
  workerBytes,
} from '../parallel/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { displayPath, fail } from '../util/index.js';
import type { CheckpointInfo } from './checkpoint.js';
import { loraTrainable } from './lora-trainable.js';
import { checkTrainingMemory, trainingMemory } from './memory-check.js';
import { createProgress, type Progress } from './progress.js';
import {
  checkFreshRunDir,
  checkResumeSettings,
  findResumeTarget,
  prepareFreshRunDir,
  updateExtendedSettings,
  writeResolvedConfig,
} from './run-dir.js';
import { lockRunDir } from './run-lock.js';
import { type LoopResult, trainLoop } from './train.js';

export interface TrainOptions {
  /** Run directory; default: the task's `output_dir`. */
  outputDir?: string;
  /** Continue the newest checkpoint of the run directory (true) or of the given run / checkpoint directory. */
  resume?: string | true;
  /** Replace an earlier run in the output directory. */
  overwrite?: boolean;
  /** Progress display; default: a bar on a TTY stderr, plain lines otherwise. */
  progress?: Progress;
  /** Install SIGINT / SIGTERM handlers (finish the step, checkpoint, stop); default true. */
  handleSignals?: boolean;
  /** Resume even though the dataset's content changed since the checkpoint. */
  allowDataChange?: boolean;
}

export interface TrainResult extends LoopResult {
  /** The base model directory. */
  baseModel: string;
  /** The task file the run was configured from. */
  configFile: string;
  /** The tfjs backend the run used. */
  backend: string;
  /** Worker threads that computed the steps (1: the main thread), and why that many. */
  workers: WorkerCount;
}

/**
 * Fine-tune a LoRA adapter as the task config says, writing the run directory of design.md.
 * @param config a loaded task file (`loadTaskConfig`)
 * @param opts outputDir, resume, overwrite, progress, handleSignals
 * @example const result = await train(await loadTaskConfig('configs/code_completion.yaml'));
 *          console.log(result.adapterDir);
 */
export async function train(config: TaskConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  if (opts.resume !== undefined && opts.overwrite) {
    fail(
      '--overwrite',
      'cannot be combined with --resume',
      'use --resume to continue the run, or --overwrite to start it again',
    );
  }
  const progress = opts.progress ?? createProgress(process.stderr);

  // 1) the run directory: a fresh one must be empty (or an earlier run with --overwrite); a
  //    resumed one must have been started with the same settings
  const outputDir = resolve(opts.outputDir ?? config.output_dir);
  let runDir = outputDir;
  let resumeFrom: CheckpointInfo | null = null;
  if (opts.resume !== undefined) {
    const target = findResumeTarget(opts.resume === true ? true : resolve(opts.resume), {
      runDir: outputDir,
      outputDirIsDefault: opts.outputDir === undefined && config.sources.output_dir === 'default',
      runPrefix: `${basename(config.configFile, extname(config.configFile))}-`,
    });
    runDir = target.runDir;
    resumeFrom = target.checkpoint;
    checkResumeSettings(runDir, taskValues(config));
    progress.note(`resuming ${displayPath(runDir)} from ${basename(resumeFrom.dir)}`);
  } else {
    checkFreshRunDir(runDir, { overwrite: opts.overwrite === true });
  }
  // one process per run folder: a second train or --resume on it exits 2 (run-lock.ts)
  const lock = lockRunDir(runDir, (line) => progress.note(line));
  try {
    return await trainInLockedDir(config, opts, progress, runDir, resumeFrom);
  } finally {
    lock.release();
  }
}

async function trainInLockedDir(
  config: TaskConfig,
  opts: TrainOptions,
  progress: Progress,
  runDir: string,
  resumeFrom: CheckpointInfo | null,
): Promise<TrainResult> {
  // 2) backend, tokenizer, packed data
  const backend = await initBackend(config.backend);
  // settings far past the backend's memory are refused before any data or weights are read
  checkTrainingMemory(config, await trainingMemory(config, backend));
  const tokenizer = await loadTokenizer(config.base_model);
  checkVocabulary(config.base_model, tokenizer);
  const data = await buildDataset(config, tokenizer, {
    log: (line) => progress.note(line),
    progress: process.stderr.isTTY === true,
  });

  // 3) the frozen base (quantized while loading with QLoRA) and fresh LoRA weights
  let model: LoadedModel = await loadModel(config.base_model, {
    quantization: config.quantization,
    doubleQuant: config.double_quant,
    precision: config.precision,
  });
  const loraOptions = {
    r: config.lora_r,
    alpha: config.lora_alpha,
    dropout: config.lora_dropout,
    targets: config.lora_target_modules,
    useRslora: config.use_rslora,
    seed: config.seed,
  };
  const rowsPerStep = config.micro_batch_size * config.gradient_accumulation_steps;
  const workers = resolveNumWorkers(config.num_workers, backend, {
    perWorkerBytes: workerBytes(model.spec, {
      micro_batch_size: Math.ceil(rowsPerStep / 2),
      sequence_len: data.seqLen,
      lora_r: config.lora_r,
      targets: resolveTargets(config.lora_target_modules),
      gradient_checkpointing: config.gradient_checkpointing,
    }),
    rowsPerStep,
  });
  // the workers read the base from shared memory; the main thread uses the same arrays
  const shared = workers.count > 1 ? shareModel(model) : null;
  if (shared) model = openSharedModel(shared);
  const lora = createLora(model, loraOptions);
  const training: MftTrainingInfo = {
    base_model: config.base_model,
    config_hash: model.configHash,
    quantization: config.quantization,
    double_quant: config.double_quant,
    precision: config.precision,
  };

  // 4) config.resolved.yaml (fresh runs; a resumed run keeps the one it started with)
  if (!resumeFrom) {
    prepareFreshRunDir(runDir, { overwrite: opts.overwrite === true });
    const sources = {
      ...config.sources,
      ...(opts.outputDir !== undefined ? { output_dir: '--output-dir' } : {}),
    };
    writeResolvedConfig(runDir, { ...taskValues(config), output_dir: runDir }, sources, [
      `task file: ${config.configFile}`,
      `recipe: ${config.recipe.file}`,
      `backend used: ${backend}`,
    ]);
  }

  // 5) the workers (num_workers > 1), then the loop (webgpu: the frozen base goes to the GPU once,
  // in its storage format)
  let pool: WorkerPool | null = null;
  const weights = trainingWeights(model);
  try {
    let trainable = loraTrainable(model, lora, {
      checkpointing: config.gradient_checkpointing,
      training,
      weights,
    });
    if (shared && (backend === 'wasm' || backend === 'cpu')) {
      const mirror = new LoraMirror(lora.variables);
      progress.note(`starting ${workers.count} workers (${workers.reason})`);
      pool = await WorkerPool.start(
        workers.count,
        {
          backend,
          model: shared,
          lora: loraOptions,
          checkpointing: config.gradient_checkpointing,
        },
        mirror,
      );
      trainable = parallelTrainable(trainable, pool, mirror);
    }
    const result = await trainLoop(
      config,
      trainable,
      { train: data.train, validation: data.validation, seqLen: data.seqLen },
      {
        runDir,
        resumeFrom,
        progress,
        handleSignals: opts.handleSignals ?? true,
        dataHash: data.cacheKey,
        allowDataChange: opts.allowDataChange === true,
      },
    );
    // a resume that extended the run records its new length (the loop accepted it)
    if (resumeFrom) updateExtendedSettings(runDir, taskValues(config));
    return { ...result, baseModel: config.base_model, configFile: config.configFile, backend, workers };
  } finally {
    await pool?.close();
    weights.dispose();
    lora.dispose();
  }
}
