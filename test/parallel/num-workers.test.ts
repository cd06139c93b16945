/** `num_workers`: the key's checks in a task file, and what `auto` resolves to. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadTaskConfig } from '../../src/config/index.js';
import { resolveNumWorkers } from '../../src/parallel/index.js';
import { MftError } from '../../src/util/index.js';
import { errorOf } from '../helpers/error-of.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

afterAll(removeTempDirs);

const MiB = 2 ** 20;
const run = { perWorkerBytes: 100 * MiB, rowsPerStep: 16 };

describe('num_workers', () => {
  test.each([
    ['zero', 0, /:3:14: num_workers: must be >= 1, got 0/],
    ['a word', 'many', /:3:14: num_workers: expected auto or an integer >= 1, got "many"/],
    ['a fraction', 1.5, /:3:14: num_workers: expected auto or an integer >= 1, got 1.5/],
  ])('%s is refused naming the file, line and column', async (_, value, message) => {
    const dir = makeTempDir('num-workers');
    const path = join(dir, 'task.yaml');
    writeFileSync(path, `task: text\ndataset: ./data.jsonl\nnum_workers: ${value}\n`);
    const err = await loadTaskConfig(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MftError);
    expect((err as Error).message).toMatch(message);
  });

  test('auto is one per core, capped by free memory and by the rows of a step', () => {
    const machine = { cores: 8, freeBytes: 2000 * MiB };
    expect(resolveNumWorkers('auto', 'wasm', run, machine)).toEqual({
      count: 8,
      reason: 'num_workers: auto, 8 cores',
    });
    expect(resolveNumWorkers('auto', 'wasm', { ...run, perWorkerBytes: 500 * MiB }, machine)).toEqual({
      count: 3,
      reason: 'num_workers: auto, 8 cores, free memory for 3',
    });
    expect(resolveNumWorkers('auto', 'cpu', { ...run, rowsPerStep: 2 }, machine).count).toBe(2);
    expect(resolveNumWorkers('auto', 'wasm', { ...run, perWorkerBytes: 1e12 }, machine).count).toBe(1);
  });

  test('a number is taken as given; backends that thread their own kernels get 1', () => {
    const machine = { cores: 2, freeBytes: 2000 * MiB };
    expect(resolveNumWorkers(4, 'wasm', run, machine).count).toBe(4);
    expect(resolveNumWorkers('auto', 'tensorflow', run, machine)).toEqual({
      count: 1,
      reason: 'num_workers: auto, tensorflow threads its own kernels',
    });
    expect(resolveNumWorkers(1, 'webgpu', run, machine).count).toBe(1);
    expect(errorOf(() => resolveNumWorkers(2, 'webgpu', run, machine))).toBe(
      'num_workers: 2 workers need the wasm or cpu backend; webgpu computes on one GPU (fix: set num_workers: 1 (or auto), or backend: wasm)',
    );
  });
});
