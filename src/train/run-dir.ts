/**
 * The run directory (design.md "Runs and checkpoints"):
 *
 *   <output_dir>/
 *     config.resolved.yaml   every setting actually used, each with where it came from
 *     metrics.jsonl          one JSON object per logged step / eval
 *     checkpoint-<step>/     see checkpoint.ts
 *     adapter/               the final adapter (PEFT layout)
 *
 * This file decides whether a directory may be used: a fresh run needs an empty or absent
 * directory (or --overwrite of a previous run), a resumed run needs the same settings as the run
 * it continues.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { builtinDefault, TASK_KEYS, type TaskKey } from '../config/schema.js';
import { displayPath, fsyncPath, MftError, writeFileAtomic } from '../util/index.js';
import { type CheckpointInfo, latestCheckpoint, readTrainerState } from './checkpoint.js';
import { LOCK_FILE } from './run-lock.js';

export const RESOLVED_CONFIG = 'config.resolved.yaml';
export const METRICS_FILE = 'metrics.jsonl';
export const FINAL_ADAPTER = 'adapter';

/** Entries an mft run directory may hold. */
function isRunEntry(name: string): boolean {
  return (
    name === RESOLVED_CONFIG ||
    name === METRICS_FILE ||
    name === FINAL_ADAPTER ||
    name === LOCK_FILE ||
    /^checkpoint-\d+$/.test(name) ||
    name.startsWith('.mft-tmp-')
  );
}

/**
 * Settings that may change when a run is resumed: they do not change what the completed steps
 * computed nor what the next ones compute (only how often rows are logged, saved, evaluated,
 * and where files go; backend and num_workers change the next steps only to float round-off).
 */
export const RESUMABLE_CHANGES: ReadonlySet<string> = new Set([
  'output_dir',
  'cache_dir',
  'backend',
  'num_workers',
  'logging_steps',
  'save_steps',
  'save_total_limit',
  'eval_steps',
  'eval_max_samples',
]);

/**
 * Settings a resume may change to make the run longer (the loop recomputes the schedule and refuses
 * a run shorter than the steps done); config.resolved.yaml is updated to the new values.
 */
export const EXTENDING_CHANGES: ReadonlySet<string> = new Set(['max_steps', 'num_epochs']);

/** Keys of a task config that are not settings (the recipe object, bookkeeping). */
const NOT_SETTINGS = new Set(['recipe', 'configFile', 'sources']);

/** The settings of a config as a plain object (what config.resolved.yaml holds). */
export function settingsOf(config: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) if (!NOT_SETTINGS.has(k) && v !== undefined) out[k] = v;
  return out;
}

/**
 * Write `config.resolved.yaml`: one `key: value  # source` line per setting, in the config's order.
 * @param sources where each value came from ('default' | 'recipe' | 'task file' | '--set')
 */
export function writeResolvedConfig(
  runDir: string,
  config: object,
  sources: Readonly<Record<string, string>> = {},
  header: string[] = [],
): void {
  const lines = [
    '# Every setting this run used; the comment says where it came from.',
    ...header.map((h) => `# ${h}`),
  ];
  for (const [key, value] of Object.entries(settingsOf(config))) {
    const text = `${key}: ${stringify(value, { collectionStyle: 'flow', lineWidth: 0 }).trimEnd()}`;
    const source = sources[key];
    lines.push(source ? `${text}  # ${source}` : text);
  }
  writeFileAtomic(join(runDir, RESOLVED_CONFIG), `${lines.join('\n')}\n`);
}

/** The settings recorded in a run's config.resolved.yaml, or null when there is none. */
export function readResolvedConfig(runDir: string): Record<string, unknown> | null {
  const path = join(runDir, RESOLVED_CONFIG);
  if (!existsSync(path)) return null;
  return (parse(readFileSync(path, 'utf8')) ?? {}) as Record<string, unknown>;
}

/**
 * Keys whose values differ between a run's recorded settings and the current ones (resumable ones
 * excepted). A key the recorded file lacks, now at its built-in default, is a setting added to mft
 * after the run started: the run behaved as that default, so it is no change.
 */
export function settingsChanged(recorded: Record<string, unknown>, current: object): string[] {
  const now = settingsOf(current);
  const keys = new Set([...Object.keys(recorded), ...Object.keys(now)]);
  const changed: string[] = [];
  for (const k of keys) {
    if (RESUMABLE_CHANGES.has(k) || EXTENDING_CHANGES.has(k)) continue;
    if (!Object.hasOwn(recorded, k) && isBuiltinDefault(k, now[k])) continue;
    if (JSON.stringify(recorded[k] ?? null) !== JSON.stringify(now[k] ?? null)) changed.push(k);
  }
  return changed.sort();
}

function isBuiltinDefault(key: string, value: unknown): boolean {
  if (!(TASK_KEYS as readonly string[]).includes(key) || value === undefined) return false;
  return JSON.stringify(builtinDefault(key as TaskKey)) === JSON.stringify(value);
}

/**
 * Refuse `runDir` for a fresh run when it holds anything, unless `opts.overwrite` and what it holds is an
 * earlier mft run, or it holds only what a run that stopped before its first checkpoint left.
 * Returns the entries to delete. Changes nothing (so a run that fails while loading leaves the directory as it was).
 */
export function checkFreshRunDir(runDir: string, opts: { overwrite?: boolean } = {}): string[] {
  const overwrite = opts.overwrite === true;
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) {
    throw new MftError({
      where: 'output_dir',
      message: `${displayPath(runDir)} is a file, not a directory`,
      fix: 'choose another output_dir (--output-dir DIR)',
    });
  }
  const entries = existsSync(runDir) ? readdirSync(runDir) : [];
  if (entries.length > 0) {
    const foreign = entries.filter((n) => !isRunEntry(n));
    if (foreign.length > 0) {
      throw new MftError({
        where: 'output_dir',
        message: `${displayPath(runDir)} is not empty and does not hold an mft run (it has ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''})`,
        fix: 'choose an empty or new output_dir (--output-dir DIR)',
      });
    }
    // a run that died before its first checkpoint (config.resolved.yaml, maybe metrics rows) has
    // nothing to resume or keep: a new run replaces it without --overwrite
    const ckpt = latestCheckpoint(runDir);
    const holdsWork = ckpt !== null || entries.includes(FINAL_ADAPTER);
    if (!overwrite && holdsWork) {
      throw new MftError({
        where: 'output_dir',
        message: `${displayPath(runDir)} already holds a run${ckpt ? ` (newest checkpoint: step ${ckpt.step})` : ''}`,
        fix: '--resume to continue it, --overwrite to replace it, or --output-dir DIR for a new run',
      });
    }
  }
  return entries;
}

/**
 * Make `runDir` ready for a fresh run: created when absent; an earlier run in it is deleted when
 * `opts.overwrite` (anything else there is refused, see `checkFreshRunDir`).
 */
export function prepareFreshRunDir(runDir: string, opts: { overwrite?: boolean } = {}): void {
  for (const name of checkFreshRunDir(runDir, opts).filter((n) => n !== LOCK_FILE))
    rmSync(join(runDir, name), { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  fsyncPath(dirname(runDir));
}

/** Where a resumed run continues from. */
export interface ResumeTarget {
  runDir: string;
  checkpoint: CheckpointInfo;
}

/**
 * Find the checkpoint to resume from. `target` is a run directory (its newest checkpoint) or a
 * `checkpoint-<step>` directory; with `target` true, `opts.runDir` is used, or, when the output_dir
 * was not chosen by the user (`opts.outputDirIsDefault`: `checkpoints/runs/<stem>-<timestamp>`), the
 * newest sibling run of the same task file (named `opts.runPrefix`...).
 */
export function findResumeTarget(
  target: string | true,
  opts: { runDir: string; outputDirIsDefault: boolean; runPrefix: string },
): ResumeTarget {
  const { runDir, outputDirIsDefault, runPrefix } = opts;
  if (target !== true) {
    if (existsSync(join(target, 'trainer_state.json'))) {
      readTrainerState(target);
      const m = /^checkpoint-(\d+)$/.exec(basename(target));
      if (!m) {
        throw new MftError({
          where: '--resume',
          message: `${displayPath(target)} holds trainer_state.json but is not named checkpoint-<step>`,
          fix: 'pass the run directory or one of its checkpoint-<step> folders',
        });
      }
      return { runDir: dirname(target), checkpoint: { step: Number(m[1]), dir: target } };
    }
    return { runDir: target, checkpoint: newestOrFail(target) };
  }
  if (outputDirIsDefault && !existsSync(runDir)) {
    const parent = dirname(runDir);
    const candidates = existsSync(parent)
      ? readdirSync(parent)
          .filter((n) => n.startsWith(runPrefix) && latestCheckpoint(join(parent, n)))
          .map((n) => join(parent, n))
      : [];
    // runs are named <stem>-<YYYYMMDD-HHMMSS>, so the newest sorts last
    const newest = candidates.sort().at(-1);
    if (!newest) {
      throw new MftError({
        where: '--resume',
        message: `no run of this task file with a checkpoint under ${displayPath(parent)} (looked for ${runPrefix}*)`,
        fix: 'pass the run directory: --resume checkpoints/runs/<run>',
      });
    }
    return { runDir: newest, checkpoint: newestOrFail(newest) };
  }
  return { runDir, checkpoint: newestOrFail(runDir) };
}

function newestOrFail(runDir: string): CheckpointInfo {
  if (!existsSync(runDir)) {
    throw new MftError({
      where: '--resume',
      message: `${displayPath(runDir)} does not exist`,
      fix: 'pass the run directory of an earlier mft train run',
    });
  }
  const ckpt = latestCheckpoint(runDir);
  if (!ckpt) {
    throw new MftError({
      where: '--resume',
      message: `${displayPath(runDir)} has no complete checkpoint-<step> folder`,
      fix: 'start the run again without --resume (add --overwrite to replace what is there)',
    });
  }
  return ckpt;
}

/** Refuse to resume with settings that change the run. */
export function checkResumeSettings(runDir: string, config: object): void {
  const recorded = readResolvedConfig(runDir);
  if (!recorded) {
    throw new MftError({
      where: '--resume',
      message: `${displayPath(runDir)} has no ${RESOLVED_CONFIG}`,
      fix: 'pass the directory of a run started by mft train',
    });
  }
  const changed = settingsChanged(recorded, config);
  if (changed.length > 0) {
    throw new MftError(
      changed.map((key) => ({
        where: key,
        message: `was ${JSON.stringify(recorded[key] ?? null)} in the run being resumed, now ${JSON.stringify(settingsOf(config)[key] ?? null)}`,
        fix: `resume with the same settings (see ${displayPath(join(runDir, RESOLVED_CONFIG))}), or start a new run`,
      })),
    );
  }
}

/**
 * Record in config.resolved.yaml the max_steps / num_epochs a resume extended the run to (the
 * lines of other settings, and the comments, stay as written).
 */
export function updateExtendedSettings(runDir: string, config: object): string[] {
  const path = join(runDir, RESOLVED_CONFIG);
  const recorded = readResolvedConfig(runDir);
  if (!recorded) return [];
  const now = settingsOf(config);
  const changed = [...EXTENDING_CHANGES].filter(
    (k) => JSON.stringify(recorded[k] ?? null) !== JSON.stringify(now[k] ?? null),
  );
  if (changed.length === 0) return [];
  let text = readFileSync(path, 'utf8');
  for (const k of changed) {
    const line = `${k}: ${stringify(now[k] ?? null, { lineWidth: 0 }).trimEnd()}  # --resume (extended, was ${JSON.stringify(recorded[k] ?? null)})`;
    text = new RegExp(`^${k}:.*$`, 'm').test(text)
      ? text.replace(new RegExp(`^${k}:.*$`, 'm'), line)
      : `${text}${line}\n`;
  }
  writeFileAtomic(path, text);
  return changed;
}
