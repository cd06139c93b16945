/**
 * Data-parallel training on worker threads, against the main thread: the same seed gives the same
 * losses and LoRA weights to float round-off for 1, 2 and 4 workers (rows split across and inside
 * micro-batches, dropout on), a resumed worker run equals an uninterrupted one exactly, a failing
 * worker is an MftError (exit 2) and never a hang, and the main thread's tensors do not grow.
 */
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { loadTaskConfig } from '../../src/config/index.js';
import { scoreGenerations } from '../../src/eval/index.js';
import { evaluateLoss } from '../../src/eval/loss-eval.js';
import { createLora, loadAdapter } from '../../src/lora/index.js';
import { loadModel } from '../../src/model/index.js';
import {
  LoraMirror,
  openSharedModel,
  parallelTrainable,
  shareModel,
  startEvalWorkers,
  WorkerPool,
} from '../../src/parallel/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { loraTrainable } from '../../src/train/lora-trainable.js';
import { type MetricsRow, readMetrics } from '../../src/train/metrics.js';
import { plainProgress } from '../../src/train/progress.js';
import { train } from '../../src/train/run.js';
import { stepGradients } from '../../src/train/train.js';
import { MftError } from '../../src/util/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { writeTrainingTask } from '../helpers/task-file.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

const BASE = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
let dir = '';

/** 3 steps of 2 micro-batches of 3 rows (4 workers split inside a micro-batch). */
function writeTask(name: string, extra: Record<string, string | number | boolean> = {}): string {
  return writeTrainingTask(dir, name, BASE, {
    micro_batch_size: 3,
    max_steps: 3,
    eval_max_samples: 4,
    ...extra,
  });
}

async function run(task: string, out: string, workers: number, resume = false) {
  const config = await loadTaskConfig(task, { set: [`num_workers=${workers}`] });
  return train(config, {
    outputDir: out,
    handleSignals: false,
    progress: plainProgress(() => {}),
    ...(resume ? { resume: true } : {}),
  });
}

function losses(out: string): { train: number[]; grad: number[]; eval: number[] } {
  const rows: MetricsRow[] = readMetrics(join(out, 'metrics.jsonl'));
  return {
    train: rows.flatMap((r) => (r.type === 'train' ? [r.loss] : [])),
    grad: rows.flatMap((r) => (r.type === 'train' ? [r.grad_norm] : [])),
    eval: rows.flatMap((r) => (r.type === 'eval' ? [r.eval_loss] : [])),
  };
}

function expectClose(a: number[], b: number[], rel: number): void {
  expect(a.length).toBe(b.length);
  for (const [i, x] of a.entries())
    expect(Math.abs(x - b[i]!), `item ${i}: ${x} vs ${b[i]}`).toBeLessThan(rel * Math.abs(x) + 1e-7);
}

/** Largest and mean |a - b| over every LoRA value of two adapters, and the largest |a|. */
function adapterDiff(a: string, b: string): { diff: number; mean: number; scale: number } {
  const ta = loadAdapter(a).tensors;
  const tb = loadAdapter(b).tensors;
  let diff = 0;
  let sum = 0;
  let n = 0;
  let scale = 0;
  for (const [k, t] of ta) {
    const u = tb.get(k)!.data;
    for (const [i, x] of t.data.entries()) {
      const d = Math.abs(x - u[i]!);
      diff = Math.max(diff, d);
      sum += d;
      n++;
      scale = Math.max(scale, Math.abs(x));
    }
  }
  return { diff, mean: sum / n, scale };
}

beforeAll(() => {
  dir = makeTempDir('workers');
  const names = ['Tom', 'Lily', 'Sam', 'Mia', 'Ben'];
  const things = ['a red ball', 'a big tree', 'a small dog', 'a blue boat', 'a shiny star'];
  const lines = Array.from({ length: 48 }, (_, i) => {
    const n = names[i % 5];
    return JSON.stringify({
      text: `Once upon a time, ${n} found ${things[(i * 3) % 5]}. ${n} was happy all day.`,
    });
  });
  writeFileSync(join(dir, 'data.jsonl'), `${lines.join('\n')}\n`);
});

afterAll(removeTempDirs);

describe('training on worker threads', () => {
  // 6 rows a step (2 micro-batches of 3): 2 workers take one micro-batch each, 4 workers split
  // inside them too (rows [0, 1), [1, 3) of the first, [0, 1), [1, 3) of the second)
  test.each([
    ['one tape', [1, 2, 4], false],
    ['layer-wise recompute', [1, 2], true],
  ])(
    '%s: %j workers give the same losses and LoRA weights to round-off',
    async (_, counts, checkpointing) => {
      const task = writeTask(`same-${checkpointing}`, { gradient_checkpointing: checkpointing });
      const outs = counts.map((n) => join(dir, `same-${checkpointing}-${n}`));
      const results = [];
      for (const [i, n] of counts.entries()) results.push(await run(task, outs[i]!, n));
      expect(results.map((r) => r.workers.count)).toEqual(counts);
      const ref = losses(outs[0]!);
      expect(ref.train).toHaveLength(3);
      expect(ref.eval.length).toBeGreaterThan(0);
      for (const out of outs.slice(1)) {
        const l = losses(out);
        expectClose(l.train, ref.train, 1e-5);
        expectClose(l.grad, ref.grad, 1e-4);
        expectClose(l.eval, ref.eval, 1e-5);
        const d = adapterDiff(join(outs[0]!, 'adapter'), join(out, 'adapter'));
        expect(d.scale).toBeGreaterThan(0);
        // AdamW divides each gradient by its own running norm, so a gradient entry near zero turns
        // round-off into a visible step; a wrong gradient moves entries by about learning_rate (0.01)
        expect(d.diff, JSON.stringify(d)).toBeLessThan(1e-4);
        expect(d.mean, JSON.stringify(d)).toBeLessThan(1e-6);
      }
      // the steps changed the weights: a test that cannot tell a wrong gradient from a right one is no test
      expect(ref.train[2]).toBeLessThan(ref.train[0]!);
    },
  );

  test('a resumed 2-worker run equals the uninterrupted one exactly', async () => {
    const task = writeTask('resume', { max_steps: 4 });
    const straight = join(dir, 'resume-straight');
    await run(task, straight, 2);
    const cut = join(dir, 'resume-cut');
    cpSync(straight, cut, { recursive: true });
    // as if the run had stopped right after checkpoint-2
    for (const d of ['checkpoint-4', 'adapter']) rmSync(join(cut, d), { recursive: true, force: true });
    const resumed = await run(task, cut, 2, true);
    expect(resumed.step).toBe(4);
    expect(losses(cut)).toEqual(losses(straight));
    expect(adapterDiff(join(straight, 'adapter'), join(cut, 'adapter')).diff).toBe(0);
  });
});

describe('mft eval on worker threads', () => {
  test("the loss, perplexity, token accuracy and generation metrics equal the main thread's, with and without the adapter", async () => {
    await initBackend('wasm');
    const tok = await loadTokenizer(BASE);
    const base = await loadModel(BASE);
    const opts = { r: 4, alpha: 8, dropout: 0, targets: 'all-linear' as const, useRslora: false, seed: 3 };
    const { evalWorkers, lora } = await startEvalWorkers(2, 'wasm', base, 4096, BASE, (m) => {
      const l = createLora(m, opts);
      // B = 0 would make the adapter a no-op: give it values
      for (const [k, v] of l.variables)
        if (k.includes('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 9));
      return l;
    });
    expect(evalWorkers.workers.count).toBe(2);
    const samples = Array.from({ length: 7 }, (_, i) => {
      const ids = Int32Array.from({ length: 20 + 9 * i }, (_, j) => (i * 31 + j * 7) % 512);
      return { ids, labels: ids };
    });
    try {
      for (const withLora of [false, true]) {
        const modelLora = withLora ? { lora: lora!.toModelLora() } : {};
        const here = await evaluateLoss(evalWorkers.model, samples, { tokenBudget: 128, ...modelLora });
        const scorer = (await evalWorkers.scorer(withLora))!;
        const there = await evaluateLoss(evalWorkers.model, samples, {
          tokenBudget: 128,
          ...modelLora,
          scorer,
        });
        expect(there.batches).toBeGreaterThan(2);
        expect(there.tokens).toBe(here.tokens);
        expect(there.token_accuracy).toBe(here.token_accuracy);
        expect(Math.abs(there.loss - here.loss)).toBeLessThan(1e-6 * here.loss);

        // the generation metrics: the same greedy continuations, in sample order
        const prompts = [
          'Once upon a time, there was a little',
          'Tom had a red ball.\nHe',
          'The sun',
          'Lily saw a big',
          'One day',
        ];
        const gen = prompts.map((prompt, i) => ({ where: `p${i}`, prompt, reference: 'x' }));
        const gopts = { maxNewTokens: 12, ...modelLora };
        const mine = await scoreGenerations(evalWorkers.model, tok, gen, 'line', gopts);
        const continuer = (await evalWorkers.continuer(withLora))!;
        expect(continuer.lanes).toBe(2);
        const theirs = await scoreGenerations(evalWorkers.model, tok, gen, 'line', { ...gopts, continuer });
        expect(mine.generated_tokens).toBeGreaterThan(prompts.length);
        expect(theirs.generated_tokens).toBe(mine.generated_tokens);
        expect(theirs.predictions).toEqual(mine.predictions);
      }
    } finally {
      lora?.dispose();
      await evalWorkers.close();
    }
  });
});

/** The base model in shared memory, fresh LoRA weights and 2 workers over them. */
async function twoWorkers(dropout: number, checkpointing: boolean) {
  await initBackend('wasm');
  const model = openSharedModel(shareModel(await loadModel(BASE)));
  const opts = { r: 4, alpha: 8, dropout, targets: 'all-linear' as const, useRslora: false, seed: 1 };
  const lora = createLora(model, opts);
  const mirror = new LoraMirror(lora.variables);
  const setup = { backend: 'wasm' as const, model: shareModel(model), lora: opts, checkpointing };
  return { model, lora, mirror, pool: await WorkerPool.start(2, setup, mirror) };
}

describe('WorkerPool', () => {
  test('a worker that throws fails the request and every later one with an MftError naming it', async () => {
    const { lora, pool } = await twoWorkers(0, true);
    try {
      // labels of the wrong length: the worker's forward pass throws
      const bad = {
        batchSize: 1,
        seqLen: 4,
        inputIds: new Int32Array(4),
        labels: new Int32Array(3),
        segmentIds: new Int32Array(4),
        positionIds: new Int32Array(4),
      };
      const err = await pool.request(1, { kind: 'eval', version: 1, batch: bad }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MftError);
      expect((err as Error).message).toMatch(
        /^worker 2 of 2: failed: .+\(fix: train in the main thread with num_workers: 1/,
      );
      const later = await pool.request(0, { kind: 'eval', version: 1, batch: bad }).catch((e: unknown) => e);
      expect(later).toBe(err);
    } finally {
      await pool.close();
      lora.dispose();
    }
  });

  test('a worker that exits fails every request with an MftError, not a hang', async () => {
    const { lora, pool } = await twoWorkers(0, true);
    try {
      // as if the thread died (out of memory, a native crash): its exit event is all the pool sees
      const worker = (pool as unknown as { workers: Worker[] }).workers[0]!;
      const exited = new Promise((resolve) => worker.once('exit', resolve)); // after the pool's own listener
      await worker.terminate();
      await exited;
      const batch = { batchSize: 1, seqLen: 1, inputIds: new Int32Array(1), labels: new Int32Array(1) };
      const full = { ...batch, segmentIds: new Int32Array(1), positionIds: new Int32Array(1) };
      const err = await pool.request(1, { kind: 'eval', version: 1, batch: full }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MftError);
      expect((err as Error).message).toMatch(/^worker 1 of 2: failed: exited with code 1 \(fix: /);
    } finally {
      await pool.close();
      lora.dispose();
    }
  });

  test("the main thread's tensors do not grow over steps", async () => {
    const { model, lora, mirror, pool } = await twoWorkers(0.1, false);
    const info = {
      base_model: BASE,
      config_hash: model.configHash,
      quantization: 'none' as const,
      double_quant: false,
      precision: 'auto' as const,
    };
    const trainable = parallelTrainable(
      loraTrainable(model, lora, { checkpointing: false, training: info }),
      pool,
      mirror,
    );
    const T = 16;
    const ids = Int32Array.from({ length: 3 * T }, (_, i) => (i * 7) % 500);
    const batch = {
      batchSize: 3,
      seqLen: T,
      inputIds: ids,
      labels: ids,
      segmentIds: new Int32Array(3 * T),
      positionIds: Int32Array.from({ length: 3 * T }, (_, i) => i % T),
    };
    try {
      const counts: number[] = [];
      for (let step = 1; step <= 4; step++) {
        const { grads } = await stepGradients(trainable, [batch, batch], 42, step);
        tf.dispose([...grads.values()]);
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts).size).toBe(1);
    } finally {
      await pool.close();
      lora.dispose();
    }
  });
});
