/**
 * Which adapter a path means, for commands that take `--adapter` (merge, eval, generate): an
 * adapter directory itself, or a run directory (`checkpoints/runs/<run>/`) with its final
 * `adapter/` and its `checkpoint-<step>/` directories (see src/train/checkpoint.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../util/index.js';
import { ADAPTER_CONFIG_FILE } from './peft-adapter.js';

/**
 * Which adapter directory `--adapter PATH [--checkpoint best|N]` means:
 * - an adapter directory (adapter_config.json inside): itself;
 * - a run directory (adapter/ or checkpoint-N/ inside): its final `adapter/`, or `checkpoint-N/`,
 *   or with `best` the checkpoint of `best_step` in the newest checkpoint's trainer_state.json.
 * @returns the directory and a line saying which one it is
 * @example resolveAdapterDir('checkpoints/runs/code', 'best').dir // .../checkpoint-400
 */
export function resolveAdapterDir(path: string, checkpoint?: string): { dir: string; description: string } {
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    fail('--adapter', `${path} is not a directory`, 'point at an adapter directory or a run directory');
  }
  const isAdapter = existsSync(join(path, ADAPTER_CONFIG_FILE));
  const checkpoints = readdirSync(path)
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(path, m[0], 'trainer_state.json')))
    .map((m) => ({ step: Number(m[1]), dir: join(path, m[0]) }))
    .sort((a, b) => a.step - b.step);
  const isRun = existsSync(join(path, 'adapter', ADAPTER_CONFIG_FILE)) || checkpoints.length > 0;
  if (checkpoint === undefined) {
    if (isAdapter) return { dir: path, description: `adapter ${path}` };
    if (existsSync(join(path, 'adapter', ADAPTER_CONFIG_FILE))) {
      return {
        dir: join(path, 'adapter'),
        description: `final adapter of run ${path}: ${join(path, 'adapter')}`,
      };
    }
    if (checkpoints.length > 0) {
      const newest = checkpoints[checkpoints.length - 1] as { step: number };
      fail(
        '--adapter',
        `run ${path} has no final adapter/ (training did not finish)`,
        `pick a checkpoint: --checkpoint ${newest.step} (or best)`,
      );
    }
    fail(
      '--adapter',
      `${path} holds no ${ADAPTER_CONFIG_FILE} and no adapter/`,
      'point at an adapter directory or a run directory',
    );
  }
  if (!isRun || isAdapter) {
    fail(
      '--checkpoint',
      `${path} is not a run directory (no adapter/ or checkpoint-N/ inside)`,
      'pass the run directory, or drop --checkpoint',
    );
  }
  const available = checkpoints.map((c) => c.step).join(', ') || 'none';
  let step: number;
  if (checkpoint === 'best') {
    const newest = checkpoints[checkpoints.length - 1];
    if (!newest)
      fail(
        '--checkpoint best',
        `run ${path} has no checkpoints`,
        'drop --checkpoint to use the final adapter',
      );
    const statePath = join(newest.dir, 'trainer_state.json');
    let best: unknown;
    try {
      best = (JSON.parse(readFileSync(statePath, 'utf8')) as { best_step?: unknown }).best_step;
    } catch (e) {
      fail(statePath, `not valid JSON: ${(e as Error).message}`);
    }
    if (typeof best !== 'number') {
      fail(
        '--checkpoint best',
        `${statePath} records no best step (no evaluation ran)`,
        `pick a step: --checkpoint N (available: ${available})`,
      );
    }
    step = best;
  } else {
    if (!/^\d+$/.test(checkpoint))
      fail(
        '--checkpoint',
        `expected "best" or a step number, got ${JSON.stringify(checkpoint)}`,
        `available: ${available}`,
      );
    step = Number(checkpoint);
  }
  const found = checkpoints.find((c) => c.step === step);
  if (!found) fail('--checkpoint', `run ${path} has no checkpoint-${step}`, `available: ${available}`);
  return {
    dir: found.dir,
    description: `${checkpoint === 'best' ? `best checkpoint (step ${step}, lowest eval loss)` : `checkpoint ${step}`} of run ${path}: ${found.dir}`,
  };
}
