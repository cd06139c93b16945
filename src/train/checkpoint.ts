/**
 * Checkpoints: `checkpoint-<step>/` in the run directory, holding everything a resumed run needs to
 * continue as if it had never stopped:
 *
 *   adapter_config.json, adapter_model.safetensors, mft_training.json   the LoRA weights (PEFT layout)
 *   optimizer.safetensors    AdamW moments per LoRA weight (`<key>.exp_avg`, `<key>.exp_avg_sq`), step
 *   trainer_state.json       step, data position (epoch, row_in_epoch), RNG state, best eval, clock
 *
 * A checkpoint is assembled in a temporary sibling directory (`.mft-tmp-checkpoint-<step>-<pid>`),
 * every file fsynced, then renamed into place: a kill at any moment leaves the newest complete
 * checkpoint loadable and never a half-written one under a checkpoint name.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MftError, writeFileAtomic } from '../util/index.js';
import { SafetensorsFile, writeSafetensors } from '../weights/index.js';
import type { AdamWState } from './adamw.js';
import { removeDirAtomically, TEMP_PREFIX, writeDirAtomically } from './write-dir.js';

export { removeDirAtomically } from './write-dir.js';

/** Version of the trainer_state.json layout; a resumed run refuses another one. */
export const TRAINER_STATE_VERSION = 1;

/** `trainer_state.json`: where the run stands after `step` optimizer updates. */
export interface TrainerState {
  version: number;
  /** Optimizer updates done. */
  step: number;
  /** Optimizer updates of the whole run (the schedule's length). */
  total_steps: number;
  /** Data position: the 0-based epoch the cursor is in... */
  epoch: number;
  /** ...and the index of the next row of `epochOrder(epoch, seed)` to train on. */
  row_in_epoch: number;
  /**
   * Randomness after initialisation is counter-based: dropout masks come from
   * mixSeed(seed, step, micro_batch), the data order from epochOrder(epoch, seed); so the state is
   * the seed and the counter of the next step.
   */
  rng_state: { seed: number; next_step: number };
  /** Eval loss at this step, when an evaluation ran at it. */
  eval_loss: number | null;
  /** Lowest eval loss so far (steps >= 1) and its step. */
  best_eval_loss: number | null;
  best_step: number | null;
  /** Seconds of the run so far (across resumes). */
  elapsed: number;
  /** Trained tokens (labels != -100) so far. */
  trained_tokens: number;
  /** Positions processed (rows x sequence_len) so far. */
  processed_tokens: number;
  /**
   * sha256 of the tokenized dataset the run trains on (files' content, recipe, tokenizer: the data
   * cache key); a resume refuses another unless --allow-data-change. Absent in older checkpoints.
   */
  data_hash?: string;
}

export interface CheckpointInfo {
  step: number;
  dir: string;
}

const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

/** Complete checkpoints of a run directory (those holding trainer_state.json), oldest first. */
export function listCheckpoints(runDir: string): CheckpointInfo[] {
  if (!existsSync(runDir)) return [];
  const out: CheckpointInfo[] = [];
  for (const name of readdirSync(runDir)) {
    const m = CHECKPOINT_RE.exec(name);
    if (m && existsSync(join(runDir, name, 'trainer_state.json'))) {
      out.push({ step: Number(m[1]), dir: join(runDir, name) });
    }
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint, or null. */
export function latestCheckpoint(runDir: string): CheckpointInfo | null {
  return listCheckpoints(runDir).at(-1) ?? null;
}

/** Remove leftovers of a killed write (`.mft-tmp-*` files and directories). */
export function removeTemporaries(runDir: string): void {
  if (!existsSync(runDir)) return;
  for (const name of readdirSync(runDir)) {
    if (name.startsWith(TEMP_PREFIX)) rmSync(join(runDir, name), { recursive: true, force: true });
  }
}

/** What a checkpoint holds besides its directory. */
export interface CheckpointContents {
  /** Writes the PEFT adapter files (and mft_training.json) into the given directory. */
  writeAdapter(dir: string): void;
  optimizer: AdamWState;
  state: TrainerState;
}

/**
 * Write `checkpoint-<state.step>/` into `runDir` atomically (temp dir, fsync, rename).
 * An existing checkpoint of the same step (from an abandoned branch of a resumed run) is replaced.
 * @returns the checkpoint directory
 * @example saveCheckpoint(runDir, { writeAdapter: (d) => saveAdapter(d, adapter), optimizer: await adam.state(), state });
 */
export function saveCheckpoint(runDir: string, contents: CheckpointContents): string {
  const dir = join(runDir, `checkpoint-${contents.state.step}`);
  writeDirAtomically(dir, (tmp) => {
    contents.writeAdapter(tmp);
    writeOptimizerState(join(tmp, 'optimizer.safetensors'), contents.optimizer);
    writeFileAtomic(join(tmp, 'trainer_state.json'), `${JSON.stringify(contents.state, null, 2)}\n`);
  });
  return dir;
}

/**
 * Keep the newest `limit` checkpoints plus the one at `keepStep` (the best by eval loss); delete
 * the others. `limit` null or <= 0 keeps all.
 * @returns the steps deleted
 */
export function rotateCheckpoints(runDir: string, limit: number | null, keepStep: number | null): number[] {
  if (limit == null || limit <= 0) return [];
  const all = listCheckpoints(runDir);
  const keep = new Set(all.slice(-limit).map((c) => c.step));
  if (keepStep != null) keep.add(keepStep);
  const deleted: number[] = [];
  for (const c of all) {
    if (!keep.has(c.step)) {
      removeDirAtomically(c.dir);
      deleted.push(c.step);
    }
  }
  return deleted;
}

/** AdamW moments as safetensors: `<key>.exp_avg`, `<key>.exp_avg_sq` (F32), metadata step. */
export function writeOptimizerState(path: string, state: AdamWState): void {
  const tensors = [];
  for (const [key, m] of state.exp_avg) {
    const v = state.exp_avg_sq.get(key)!;
    tensors.push({ name: `${key}.exp_avg`, dtype: 'F32' as const, shape: [m.length], data: m });
    tensors.push({ name: `${key}.exp_avg_sq`, dtype: 'F32' as const, shape: [v.length], data: v });
  }
  writeSafetensors(path, tensors, { format: 'mft-adamw', step: String(state.step) });
}

/** Read `optimizer.safetensors` back; a file that is not an mft optimizer state is an MftError. */
export function readOptimizerState(path: string): AdamWState {
  if (!existsSync(path)) {
    throw new MftError({
      where: path,
      message: 'missing',
      fix: 'resume from a complete checkpoint-<step> folder',
    });
  }
  const file = SafetensorsFile.open(path);
  try {
    const step = Number(file.metadata.step);
    if (file.metadata.format !== 'mft-adamw' || !Number.isInteger(step) || step < 0) {
      throw new MftError({
        where: path,
        message: 'not an mft optimizer state (metadata format "mft-adamw" and an integer step expected)',
        fix: 'resume from a checkpoint written by mft train',
      });
    }
    const exp_avg = new Map<string, Float32Array>();
    const exp_avg_sq = new Map<string, Float32Array>();
    for (const name of file.names()) {
      const t = file.read(name);
      if (t.dtype !== 'F32') {
        throw new MftError({ where: `${path}: ${name}`, message: `dtype ${t.dtype}, expected F32` });
      }
      const data = t.data as Float32Array;
      if (name.endsWith('.exp_avg_sq')) exp_avg_sq.set(name.slice(0, -'.exp_avg_sq'.length), data);
      else if (name.endsWith('.exp_avg')) exp_avg.set(name.slice(0, -'.exp_avg'.length), data);
      else
        throw new MftError({ where: `${path}: ${name}`, message: 'unexpected tensor in an optimizer state' });
    }
    return { step, exp_avg, exp_avg_sq };
  } finally {
    file.close();
  }
}

/** Read and check `trainer_state.json` of a checkpoint directory. */
export function readTrainerState(checkpointDir: string): TrainerState {
  const path = join(checkpointDir, 'trainer_state.json');
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as TrainerState;
  } catch (e) {
    throw new MftError({
      where: path,
      message: `cannot be read: ${(e as Error).message}`,
      fix: 'resume from another checkpoint-<step> folder of the run',
    });
  }
  const ints = ['step', 'total_steps', 'epoch', 'row_in_epoch'] as const;
  const bad = ints.filter((k) => !Number.isInteger(state[k]) || state[k] < 0);
  if (
    state.version !== TRAINER_STATE_VERSION ||
    bad.length > 0 ||
    typeof state.rng_state?.seed !== 'number'
  ) {
    throw new MftError({
      where: path,
      message:
        state.version !== TRAINER_STATE_VERSION
          ? `version ${state.version}, this mft reads version ${TRAINER_STATE_VERSION}`
          : `malformed (${bad.length > 0 ? bad.join(', ') : 'rng_state'} missing or not a non-negative integer)`,
      fix: 'resume from a checkpoint written by this version of mft train',
    });
  }
  return state;
}
