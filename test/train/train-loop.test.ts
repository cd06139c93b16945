import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { latestCheckpoint, listCheckpoints, readTrainerState } from '../../src/train/checkpoint.js';
import { type MetricsRow, readMetrics, type TrainRow } from '../../src/train/metrics.js';
import { plainProgress } from '../../src/train/progress.js';
import { type TrainSettings, trainLoop } from '../../src/train/train.js';
import { displayPath } from '../../src/util/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { BigramTrainable, patternData, patternSplit } from './stand-ins.js';

beforeAll(async () => {
  await initBackend('wasm');
});

afterEach(removeTempDirs);
const tempDir = () => makeTempDir('loop');

const settings: TrainSettings = {
  seed: 3,
  micro_batch_size: 2,
  gradient_accumulation_steps: 2,
  num_epochs: 2,
  max_steps: null,
  learning_rate: 0.05,
  lr_scheduler: 'cosine',
  warmup_steps: 2,
  warmup_ratio: 0,
  min_lr_ratio: 0.1,
  weight_decay: 0.01,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  max_grad_norm: 1,
  eval_steps: 4,
  eval_max_samples: 4,
  save_steps: 5,
  save_total_limit: 2,
  logging_steps: 1,
};

function ctx(runDir: string, lines: string[] = [], resumeFrom = null as ReturnType<typeof latestCheckpoint>) {
  return { runDir, resumeFrom, progress: plainProgress((l) => lines.push(l)), handleSignals: true };
}

function trainRows(rows: MetricsRow[]): TrainRow[] {
  return rows.filter((r): r is TrainRow => r.type === 'train');
}

describe('trainLoop', () => {
  test('trains: the loss falls, metrics rows are written, the final adapter and checkpoints exist', async () => {
    const runDir = tempDir();
    const model = new BigramTrainable({ seed: 1 });
    const lines: string[] = [];
    const r = await trainLoop(settings, model, patternData(), ctx(runDir, lines));
    // 24 rows / (2 x 2) = 6 steps per epoch, 2 epochs
    expect(r.totalSteps).toBe(12);
    expect(r.step).toBe(12);
    expect(r.interrupted).toBeNull();
    const rows = readMetrics(join(runDir, 'metrics.jsonl'));
    const train = trainRows(rows);
    expect(train.map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(train.at(-1)!.loss).toBeLessThan(train[0]!.loss * 0.8);
    expect(train.at(-1)!.epoch).toBe(2);
    // evals at 0 (base), 4, 8 and the last step
    const evals = rows.filter((x) => x.type === 'eval');
    expect(evals.map((x) => x.step)).toEqual([0, 4, 8, 12]);
    expect(r.baseEvalLoss).toBe(evals[0]!.type === 'eval' ? evals[0]!.eval_loss : null);
    expect(r.finalEvalLoss!).toBeLessThan(r.baseEvalLoss!);
    expect(existsSync(join(r.adapterDir!, 'adapter_model.safetensors'))).toBe(true);
    // save_total_limit 2 plus the best: steps 10 and 12 (12 is also the best)
    expect(listCheckpoints(runDir).map((c) => c.step)).toEqual([10, 12]);
    expect(readTrainerState(join(runDir, 'checkpoint-12'))).toMatchObject({
      step: 12,
      total_steps: 12,
      epoch: 2,
      row_in_epoch: 0,
      best_step: 12,
      rng_state: { seed: 3, next_step: 13 },
    });
    expect(lines[0]).toBe('training 12 steps');
    expect(lines.some((l) => /^step 12\/12 {2}epoch 2.00 {2}loss \d\.\d{4} {2}lr /.test(l))).toBe(true);
    model.dispose();
  });

  test('the step loss is sum of token losses / trained tokens of the whole step, whatever the micro-batching', async () => {
    // rows carry 4..7 trained tokens each, so a mean of micro-batch means would differ
    const data = patternData(8, 8, 0);
    const one = new BigramTrainable({ seed: 5 });
    const four = new BigramTrainable({ seed: 5 });
    const s = { ...settings, num_epochs: 1, eval_steps: null, save_steps: 100 };
    await trainLoop({ ...s, micro_batch_size: 4, gradient_accumulation_steps: 1 }, one, data, ctx(tempDir()));
    const runFour = tempDir();
    // an independent value of step 1's loss: the same rows evaluated with the initial weights
    const ref = new BigramTrainable({ seed: 5 });
    const firstRows = data.train.epochOrder(0, s.seed).slice(0, 4);
    const refLoss = await ref.evalLoss(data.train.batch(firstRows));
    ref.dispose();
    await trainLoop({ ...s, micro_batch_size: 1, gradient_accumulation_steps: 4 }, four, data, ctx(runFour));
    const lossFour = trainRows(readMetrics(join(runFour, 'metrics.jsonl')));
    expect(lossFour[0]!.loss).toBeCloseTo(refLoss.lossSum / refLoss.count, 6);
    expect(lossFour[0]!.tokens).toBe(refLoss.count);
    for (const [k, v] of one.variables) {
      const a = v.dataSync();
      const b = four.variables.get(k)!.dataSync();
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-5);
    }
    one.dispose();
    four.dispose();
  });

  test('SIGTERM finishes the step, checkpoints, and a resume gives the losses and adapter of a straight run', async () => {
    const data = patternData();
    const s = { ...settings, lora_dropout: 0.2 };
    // straight
    const straightDir = tempDir();
    const straight = new BigramTrainable({ seed: 1, dropout: 0.2 });
    await trainLoop(s, straight, data, ctx(straightDir));
    straight.dispose();
    // interrupted during step 7 (2 micro-batches per step: call 13 is step 7's first)
    const runDir = tempDir();
    const lines: string[] = [];
    const first = new BigramTrainable({
      seed: 1,
      dropout: 0.2,
      onMicroBatch: (call) => {
        if (call === 13) process.emit('SIGTERM');
      },
    });
    const r1 = await trainLoop(s, first, data, ctx(runDir, lines));
    first.dispose();
    expect(r1.interrupted).toBe('SIGTERM');
    expect(r1.step).toBe(7);
    expect(r1.adapterDir).toBeNull();
    expect(latestCheckpoint(runDir)!.step).toBe(7);
    expect(lines).toContain(
      'SIGTERM: stopping after the step in progress and saving a checkpoint (SIGTERM again stops at once)',
    );
    // the closing note names the checkpoint actually written
    expect(lines.filter((l) => /^SIGTERM: stopped after step/.test(l))).toEqual([
      `SIGTERM: stopped after step 7; saved ${displayPath(join(runDir, 'checkpoint-7'))}`,
    ]);
    // resume with fresh weights (they come from the checkpoint)
    const second = new BigramTrainable({ seed: 99, dropout: 0.2 });
    const r2 = await trainLoop(s, second, data, ctx(runDir, [], latestCheckpoint(runDir)));
    second.dispose();
    expect(r2.step).toBe(12);
    const a = readMetrics(join(straightDir, 'metrics.jsonl'));
    const b = readMetrics(join(runDir, 'metrics.jsonl'));
    // same rows, same values (all but the clock)
    const strip = (rows: MetricsRow[]) =>
      rows.map((x) => {
        const { elapsed, ...rest } = x;
        return x.type === 'train' ? { ...rest, tokens_per_second: 0 } : rest;
      });
    expect(strip(b)).toEqual(strip(a));
    expect(
      BigramTrainable.adapterBytes(r2.adapterDir!).equals(
        BigramTrainable.adapterBytes(join(straightDir, 'adapter')),
      ),
    ).toBe(true);
  });

  test('resuming from an older checkpoint drops the later ones, the final adapter and later metrics rows', async () => {
    const data = patternData();
    const runDir = tempDir();
    const s = { ...settings, save_total_limit: 10 };
    const m1 = new BigramTrainable({ seed: 1 });
    await trainLoop(s, m1, data, ctx(runDir));
    m1.dispose();
    expect(listCheckpoints(runDir).map((c) => c.step)).toEqual([4, 5, 8, 10, 12]);
    const before = readFileSync(join(runDir, 'adapter', 'adapter_model.safetensors'));
    const m2 = new BigramTrainable({ seed: 2 });
    const from = listCheckpoints(runDir).find((c) => c.step === 5)!;
    const r = await trainLoop(s, m2, data, ctx(runDir, [], from));
    m2.dispose();
    expect(r.step).toBe(12);
    expect(readFileSync(join(runDir, 'adapter', 'adapter_model.safetensors')).equals(before)).toBe(true);
    const steps = trainRows(readMetrics(join(runDir, 'metrics.jsonl'))).map((x) => x.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  test('a non-finite loss stops the run naming the step; the last good checkpoint stays', async () => {
    const runDir = tempDir();
    // 2 micro-batches per step: call 6 belongs to step 3
    const model = new BigramTrainable({ seed: 1, poisonCall: { call: 6, value: Number.NaN } });
    const s = { ...settings, save_steps: 2 };
    await expect(trainLoop(s, model, patternData(), ctx(runDir))).rejects.toThrow(
      /step 3: the loss is NaN: training stopped before this update; the last good checkpoint is .*checkpoint-2/,
    );
    expect(listCheckpoints(runDir).map((c) => c.step)).toEqual([2]);
    expect(existsSync(join(runDir, 'adapter'))).toBe(false);
    expect(trainRows(readMetrics(join(runDir, 'metrics.jsonl'))).map((x) => x.step)).toEqual([1, 2]);
    model.dispose();
  });

  test('an infinite gradient stops the run too', async () => {
    const runDir = tempDir();
    const model = new BigramTrainable({ seed: 1 });
    const data = patternData();
    const a = model.variables.get('bigram.lora_A.weight')!;
    // a huge weight: the softmax saturates and the gradient of B overflows
    a.assign(tf.fill(a.shape, 1e30));
    await expect(trainLoop({ ...settings }, model, data, ctx(runDir))).rejects.toThrow(
      /step 1: the (loss|gradient norm) is/,
    );
    model.dispose();
  });

  test('the best checkpoint by eval loss survives rotation, and trainer_state points at it', async () => {
    const runDir = tempDir();
    const model = new BigramTrainable({ seed: 1 });
    // eval losses by call: base, then steps 2, 4, 6, ..., 12: the best is step 4
    const evalLosses = [9, 5, 1, 2, 3, 4, 6];
    let evalCall = 0;
    let batchInCall = 0;
    const realEval = model.evalLoss.bind(model);
    model.evalLoss = async (batch) => {
      const r = await realEval(batch);
      // eval_max_samples 4, micro_batch_size 2: two batches per evaluation
      const loss = evalLosses[evalCall]!;
      batchInCall += 1;
      if (batchInCall === 2) {
        batchInCall = 0;
        evalCall += 1;
      }
      return { lossSum: loss * r.count, count: r.count };
    };
    const r = await trainLoop(
      { ...settings, eval_steps: 2, save_steps: 2, save_total_limit: 1 },
      model,
      patternData(),
      ctx(runDir),
    );
    expect(r.bestStep).toBe(4);
    expect(r.bestEvalLoss).toBeCloseTo(1, 5);
    expect(listCheckpoints(runDir).map((c) => c.step)).toEqual([4, 12]);
    expect(readTrainerState(join(runDir, 'checkpoint-12'))).toMatchObject({ best_step: 4, eval_loss: 6 });
    model.dispose();
  });

  test('tensors stay flat across a run', async () => {
    const model = new BigramTrainable({ seed: 1 });
    const before = tf.memory().numTensors;
    await trainLoop({ ...settings, num_epochs: 3 }, model, patternData(), ctx(tempDir()));
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  test('a split with fewer rows than one step still trains one step per epoch', async () => {
    const model = new BigramTrainable({ seed: 1 });
    const data = { train: patternSplit(3, 8, 1), validation: null, seqLen: 8 };
    const r = await trainLoop({ ...settings, num_epochs: 2 }, model, data, ctx(tempDir()));
    expect(r.totalSteps).toBe(2);
    expect(r.baseEvalLoss).toBeNull();
    model.dispose();
  });

  test('a step whose rows carry no loss makes no update and no metrics row', async () => {
    const inner = patternSplit(8, 8, 1);
    // rows 0 and 1 lose every label; the order is fixed so step 1 gets exactly them
    const masked = {
      ...inner,
      batch: (rows: number[]) => {
        const b = inner.batch(rows);
        rows.forEach((r, i) => {
          if (r < 2) b.labels.fill(-100, i * 8, (i + 1) * 8);
        });
        return b;
      },
      epochOrder: () => [0, 1, 2, 3, 4, 5, 6, 7],
    };
    const model = new BigramTrainable({ seed: 1 });
    const before = model.variables.get('bigram.lora_A.weight')!.dataSync().slice();
    const lines: string[] = [];
    const runDir = tempDir();
    const s = {
      ...settings,
      gradient_accumulation_steps: 1,
      max_steps: 1,
      warmup_steps: 0,
      eval_steps: null,
    };
    const r = await trainLoop(s, model, { train: masked, validation: null, seqLen: 8 }, ctx(runDir, lines));
    expect(r.step).toBe(1);
    expect(lines).toContain('step 1: no token of its rows carries loss; no update');
    expect(Array.from(model.variables.get('bigram.lora_A.weight')!.dataSync())).toEqual(Array.from(before));
    expect(readMetrics(join(runDir, 'metrics.jsonl'))).toEqual([]);
    model.dispose();
  });

  test('the run directory ends with only run files', async () => {
    const runDir = tempDir();
    const model = new BigramTrainable({ seed: 1 });
    await trainLoop(settings, model, patternData(), ctx(runDir));
    expect(readdirSync(runDir).sort()).toEqual([
      'adapter',
      'checkpoint-10',
      'checkpoint-12',
      'metrics.jsonl',
    ]);
    model.dispose();
  });
});

describe('resuming with other data or a longer run', () => {
  const short = { ...settings, max_steps: 4, eval_steps: null, save_steps: 2 };

  test('a changed dataset hash is refused, or continued with --allow-data-change', async () => {
    const runDir = tempDir();
    const m1 = new BigramTrainable({ seed: 1 });
    await trainLoop({ ...short, max_steps: 2 }, m1, patternData(), {
      ...ctx(runDir),
      dataHash: 'a'.repeat(64),
    });
    m1.dispose();
    expect(readTrainerState(latestCheckpoint(runDir)!.dir).data_hash).toBe('a'.repeat(64));
    const m2 = new BigramTrainable({ seed: 1 });
    const changed = { ...ctx(runDir, [], latestCheckpoint(runDir)), dataHash: 'b'.repeat(64) };
    await expect(trainLoop({ ...short, max_steps: 2 }, m2, patternData(), changed)).rejects.toThrow(
      /trainer_state\.json: the dataset changed since this checkpoint \(its tokenized content hash was aaaaaaaaaaaa, now bbbbbbbbbbbb\) \(fix: .*--allow-data-change/,
    );
    const lines: string[] = [];
    const allowed = {
      ...ctx(runDir, lines, latestCheckpoint(runDir)),
      dataHash: 'b'.repeat(64),
      allowDataChange: true,
    };
    const r = await trainLoop({ ...short, max_steps: 3 }, m2, patternData(), allowed);
    m2.dispose();
    expect(r.step).toBe(3);
    expect(lines.some((l) => l.includes('continuing on the new data (--allow-data-change)'))).toBe(true);
    expect(readTrainerState(latestCheckpoint(runDir)!.dir).data_hash).toBe('b'.repeat(64));
  });

  test('a finished run extended with a larger max_steps continues from its last step; a shorter one is refused', async () => {
    const runDir = tempDir();
    const m1 = new BigramTrainable({ seed: 1 });
    const first = await trainLoop(short, m1, patternData(), ctx(runDir));
    m1.dispose();
    expect(first.step).toBe(4);
    expect(first.adapterDir).not.toBeNull();
    const lines: string[] = [];
    const m2 = new BigramTrainable({ seed: 1 });
    const r = await trainLoop(
      { ...short, max_steps: 7 },
      m2,
      patternData(),
      ctx(runDir, lines, latestCheckpoint(runDir)),
    );
    expect(r.step).toBe(7);
    expect(r.totalSteps).toBe(7);
    expect(lines).toContain(
      'the run now has 7 steps (was 4); the learning-rate schedule is recomputed for 7',
    );
    const steps = trainRows(readMetrics(join(runDir, 'metrics.jsonl'))).map((x) => x.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(readTrainerState(latestCheckpoint(runDir)!.dir).total_steps).toBe(7);
    await expect(
      trainLoop({ ...short, max_steps: 5 }, m2, patternData(), ctx(runDir, [], latestCheckpoint(runDir))),
    ).rejects.toThrow(
      /the run had 7 steps \(7 done\), the settings and data now give 5 \(fix: resume with the same or a larger/,
    );
    m2.dispose();
  });
});
