import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { resolveAdapterDir } from '../../src/lora/adapter-dir.js';
import { errorOf } from '../helpers/error-of.js';
import { writeCheckpoint } from '../helpers/fake-checkpoint.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const ADAPTER = 'test/fixtures/llama-golden/adapter';
const root = fileTempDir('adapter-dir');

describe('resolveAdapterDir', () => {
  const run = join(root, 'run');
  const ckpt = (step: number, best: number | null) => writeCheckpoint(run, step, best, ADAPTER);

  test('adapter dir, run dir, checkpoint N and best', () => {
    ckpt(10, null);
    expect(errorOf(() => resolveAdapterDir(run))).toContain(
      'has no final adapter/ (training did not finish) (fix: pick a checkpoint: --checkpoint 10 (or best))',
    );
    expect(errorOf(() => resolveAdapterDir(run, 'best'))).toContain(
      'records no best step (no evaluation ran)',
    );
    ckpt(20, 20);
    ckpt(30, 20);
    mkdirSync(join(run, 'adapter'));
    for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
      copyFileSync(join(ADAPTER, f), join(run, 'adapter', f));
    expect(resolveAdapterDir(ADAPTER).dir).toBe(ADAPTER);
    expect(resolveAdapterDir(run).dir).toBe(join(run, 'adapter'));
    expect(resolveAdapterDir(run, '10').dir).toBe(join(run, 'checkpoint-10'));
    const best = resolveAdapterDir(run, 'best');
    expect(best.dir).toBe(join(run, 'checkpoint-20'));
    expect(best.description).toContain('best checkpoint (step 20');
    expect(errorOf(() => resolveAdapterDir(run, '15'))).toContain(
      `run ${run} has no checkpoint-15 (fix: available: 10, 20, 30)`,
    );
    expect(errorOf(() => resolveAdapterDir(ADAPTER, 'best'))).toContain('is not a run directory');
    expect(errorOf(() => resolveAdapterDir(join(root, 'nowhere')))).toContain('is not a directory');
  });
});
