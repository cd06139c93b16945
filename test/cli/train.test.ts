/**
 * `mft train` end to end on the small default base model (checkpoints/base/tinystories-260k), with
 * a 48-record text dataset written by the test: resume after `kill -9`, SIGTERM, refusal of an
 * output directory that holds a run, and the stop on a non-finite loss.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type MetricsRow, readMetrics } from '../../src/train/metrics.js';
import { writeTrainingTask } from '../helpers/task-file.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const BASE = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
let dir = '';

/** A task file in `dir` (with `data.jsonl` beside it); `extra` lines override or add keys. */
function writeTask(name: string, extra: Record<string, string | number> = {}): string {
  return writeTrainingTask(dir, name, BASE, extra);
}

interface Exit {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Start the CLI (from source) without waiting for it. */
function startCli(args: string[]): { child: ChildProcess; exit: Promise<Exit> } {
  const child = spawn(process.execPath, ['--import', 'tsx', `${REPO_ROOT}test/cli/cli-entry.ts`, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exit = new Promise<Exit>((resolve) => {
    child.on('exit', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
  return { child, exit };
}

/** Resolve once `path` exists (polled every 5 ms), or reject after `ms`. */
function waitFor(path: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      if (existsSync(path)) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() - t0 > ms) {
        clearInterval(timer);
        reject(new Error(`${path} did not appear within ${ms} ms`));
      }
    }, 5);
  });
}

/** The rows of a run's metrics that must not depend on the clock. */
function comparable(rows: MetricsRow[]): unknown[] {
  return rows.map((r) =>
    r.type === 'train'
      ? { step: r.step, loss: r.loss, lr: r.lr, grad_norm: r.grad_norm, tokens: r.tokens, epoch: r.epoch }
      : { step: r.step, eval_loss: r.eval_loss, eval_tokens: r.eval_tokens },
  );
}

beforeAll(() => {
  dir = makeTempDir('train-cli');
  const names = ['Tom', 'Lily', 'Sam', 'Mia', 'Ben'];
  const things = ['a red ball', 'a big tree', 'a small dog', 'a blue boat', 'a shiny star'];
  const lines = Array.from({ length: 48 }, (_, i) => {
    const n = names[i % 5];
    const text = `Once upon a time, ${n} found ${things[(i * 3) % 5]}. ${n} was very happy and played with it all day.`;
    return JSON.stringify({ text });
  });
  writeFileSync(join(dir, 'data.jsonl'), `${lines.join('\n')}\n`);
});

afterAll(removeTempDirs);

describe('mft train', () => {
  test('resume after kill -9 gives the per-step losses and the final adapter of an uninterrupted run', async () => {
    const task = writeTask('resume');
    const straight = join(dir, 'straight');
    const r = runCli(['train', task, '--output-dir', straight]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^trained 10 steps in /);
    expect(r.stdout).toMatch(/\nadapter {4}.*straight\/adapter\n/);
    expect(r.stdout).toMatch(/mft merge --model .* --adapter .*straight --out /);

    // the same run, killed without warning once its first checkpoint is complete
    const killed = join(dir, 'killed');
    const run = startCli(['train', task, '--output-dir', killed]);
    await waitFor(join(killed, 'checkpoint-2', 'trainer_state.json'), 60_000);
    run.child.kill('SIGKILL');
    const ended = await run.exit;
    expect(ended.signal).toBe('SIGKILL');
    expect(existsSync(join(killed, 'adapter'))).toBe(false);

    const resumed = runCli(['train', task, '--output-dir', killed, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming .*killed from checkpoint-\d+/);

    // bit-equal: wasm runs one thread, so the same inputs give the same floats in every process
    const a = readMetrics(join(straight, 'metrics.jsonl'));
    const b = readMetrics(join(killed, 'metrics.jsonl'));
    expect(comparable(b)).toEqual(comparable(a));
    expect(a.filter((x) => x.type === 'train').map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const adapterA = readFileSync(join(straight, 'adapter', 'adapter_model.safetensors'));
    const adapterB = readFileSync(join(killed, 'adapter', 'adapter_model.safetensors'));
    expect(adapterB.equals(adapterA)).toBe(true);

    // the finished run's directory is not reused by accident
    const again = runCli(['train', task, '--output-dir', straight]);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(
      /^mft: output_dir: .*straight already holds a run \(newest checkpoint: step 10\) \(fix: --resume to continue it, --overwrite to replace it/m,
    );
    expect(again.stderr).not.toMatch(/\n\s+at /); // no stack trace
  }, 120_000);

  test('SIGTERM finishes the step, writes a checkpoint, says how to resume and exits 143', async () => {
    const task = writeTask('sigterm', { max_steps: 500, save_steps: 100 });
    const out = join(dir, 'sigterm');
    const run = startCli(['train', task, '--output-dir', out, '--set', 'logging_steps=1']);
    // the first step has run once its metrics row exists
    await waitFor(join(out, 'metrics.jsonl'), 60_000);
    await new Promise((r) => setTimeout(r, 300));
    run.child.kill('SIGTERM');
    const ended = await run.exit;
    expect(ended.status, ended.stderr).toBe(143);
    const m = /stopped by SIGTERM at step (\d+)\/500/.exec(ended.stdout);
    expect(m).not.toBeNull();
    const step = Number(m![1]);
    expect(existsSync(join(out, `checkpoint-${step}`, 'optimizer.safetensors'))).toBe(true);
    expect(ended.stderr).toContain('SIGTERM: stopping after the step in progress and saving a checkpoint');
    // the message names the checkpoint written, the one the summary reports
    expect(ended.stderr).toMatch(
      new RegExp(`SIGTERM: stopped after step ${step}; saved .*checkpoint-${step}\\n`),
    );
    expect(ended.stdout).toContain(`--set logging_steps=1 --resume ${out}`);
    expect(existsSync(join(out, 'adapter'))).toBe(false);
  }, 120_000);

  test('a non-finite loss stops the run naming the step and keeps the last good checkpoint', () => {
    // lr 1e30: the first update makes the adapter weights ~1e30, the second forward overflows
    const task = writeTask('nan', { learning_rate: '1.0e+30', max_steps: 4, save_steps: 1 });
    const out = join(dir, 'nan');
    const r = runCli(['train', task, '--output-dir', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^mft: step 2: the (loss|gradient norm) is (NaN|Infinity): training stopped before this update; the last good checkpoint is .*checkpoint-1 \(fix: lower learning_rate/m,
    );
    expect(existsSync(join(out, 'checkpoint-1', 'trainer_state.json'))).toBe(true);
    expect(existsSync(join(out, 'checkpoint-2'))).toBe(false);
  }, 60_000);
});
