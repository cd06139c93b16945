/**
 * The memory estimate against measurement: the base's storage bytes against what loadModel holds,
 * and the tensor bytes of a small real training job against its peak as tfjs's engine counts it
 * (tf.profile's peakBytes: every tensor alive at once, on any backend).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { loadTaskConfig } from '../../src/config/index.js';
import { loadModel } from '../../src/model/index.js';
import {
  baseStorageBytes,
  checkTrainingMemory,
  type Progress,
  train,
  trainingMemory,
  WASM_HEAP_BYTES,
} from '../../src/train/index.js';
import { formatBytes } from '../../src/util/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { writeTaskFile } from '../helpers/task-file.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const BASE = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
const dir = fileTempDir('memory-estimate');
const silent: Progress = { start() {}, step() {}, eval() {}, note() {}, stop() {} };

/** The estimate stays within this factor of the measured peak, either way. */
const FACTOR = 1.5;

beforeAll(async () => {
  await initBackend('wasm');
  const words = 'Once upon a time there was a little girl named Lily who loved to play in the park'.split(
    ' ',
  );
  const lines = Array.from({ length: 64 }, (_, i) =>
    JSON.stringify({ text: Array.from({ length: 60 }, (_, k) => words[(i + k) % words.length]).join(' ') }),
  );
  writeFileSync(join(dir, 'data.jsonl'), `${lines.join('\n')}\n`);
});

function taskFile(name: string, keys: Record<string, string | number | boolean>): string {
  const path = join(dir, `${name}.yaml`);
  const all = {
    task: 'text',
    dataset: './data.jsonl',
    base_model: BASE,
    backend: 'wasm',
    num_workers: 1, // the peak measured is this thread's
    max_steps: 2,
    val_set_size: 0,
    save_steps: 100,
    lora_dropout: 0.05,
    cache_dir: './cache',
    output_dir: `./run-${name}`,
    ...keys,
  };
  return writeTaskFile(path, all);
}

describe('memory estimate', () => {
  test('the base is counted at the bytes loadModel stores it in', async () => {
    for (const quantization of ['none', 'nf4', 'int8'] as const) {
      const model = await loadModel(BASE, { quantization, doubleQuant: quantization === 'nf4' });
      const tensors = [model.embed_tokens, model.norm, ...model.layers.flatMap((l) => Object.values(l))];
      const held = tensors.reduce((n, t) => n + t.byteLength, 0);
      expect(baseStorageBytes(model.spec, 4, quantization, quantization === 'nf4'), quantization).toBe(held);
    }
  });

  test("cpu and tensorflow are bounded by the machine's memory", async () => {
    const config = await loadTaskConfig(taskFile('machine', { micro_batch_size: 8, sequence_len: 128 }));
    expect((await trainingMemory(config, 'cpu')).overBy).toBeNull();
    const small = await trainingMemory(config, 'cpu', 64 * 2 ** 20);
    expect(small.overBy).toBe("more than this machine's memory (64 MiB)");
    // each worker holds its own tensors
    const one = await trainingMemory(config, 'cpu', 2 * small.estimate.tensors);
    expect(one.overBy).toBeNull();
    const four = await loadTaskConfig(
      taskFile('workers', { micro_batch_size: 8, sequence_len: 128, num_workers: 4 }),
    );
    expect((await trainingMemory(four, 'cpu', 2 * small.estimate.tensors)).overBy).toMatch(/ for 4 workers$/);
    expect(() => checkTrainingMemory(config, small)).toThrow(
      /machine\.yaml: training on cpu needs about [\d.]+ MiB \(base 1016 KiB outside tfjs; .*\): more than this machine's memory \(64 MiB\) \(fix: use a smaller micro_batch_size \(now 8; raise gradient_accumulation_steps to keep the batch\) or sequence_len \(now 128\)/,
    );
  });

  test.each([
    ['checkpointed', { gradient_checkpointing: true, micro_batch_size: 8, sequence_len: 128, lora_r: 8 }],
    ['one tape', { gradient_checkpointing: false, micro_batch_size: 4, sequence_len: 64, lora_r: 8 }],
    ['large rank', { gradient_checkpointing: true, micro_batch_size: 2, sequence_len: 64, lora_r: 512 }],
  ])(
    `a real %s job peaks within ${FACTOR}x of the estimate`,
    async (name, keys) => {
      const config = await loadTaskConfig(taskFile(name.replace(' ', '-'), keys));
      const verdict = await trainingMemory(config, 'wasm');
      expect(verdict.overBy).toBeNull();
      const before = tf.memory().numBytes;
      const info = await tf.profile(async () => {
        await train(config, { handleSignals: false, progress: silent });
      });
      const measured = info.peakBytes - before;
      const estimated = verdict.estimate.tensors;
      const note = `${name}: estimated ${formatBytes(estimated)}, measured ${formatBytes(measured)}`;
      expect(estimated, note).toBeLessThan(FACTOR * measured);
      expect(estimated, note).toBeGreaterThan(measured / FACTOR);
      expect(measured).toBeLessThan(WASM_HEAP_BYTES);
    },
    120_000,
  );
});
