/**
 * Which records an evaluation reads:
 * - `--data FILE`: every record of the file;
 * - `--data NAME_OR_FOLDER` or a task file's `dataset`: the split's files (`validation.*` or
 *   `test.*`); for `validation` without such files, the records a task file's `val_set_size` holds
 *   out of the training files (the trainer's validation records).
 */
import { statSync } from 'node:fs';
import { resolveNamedPath } from '../config/index.js';
import { resolveDataset, type SourceFile } from '../data/index.js';
import { displayPath, fail } from '../util/index.js';

export type EvalSplit = 'validation' | 'test';

/** The files of an evaluation and how to pick records from them. */
export interface EvalSource {
  readonly files: SourceFile[];
  /** Hold out records like `buildDataset` (val_set_size); null: all records of `files`. */
  readonly heldOut: { valSetSize: number; seed: number } | null;
  /** What is evaluated, for the report (`validation split of datasets/github_code`). */
  readonly description: string;
}

/**
 * Resolve `--data` as typed: a path, or a dataset name under `datasets/`.
 * @returns the absolute path
 */
export function resolveDataArg(data: string, cwd: string = process.cwd()): string {
  const lookup = resolveNamedPath(data, { kind: 'dataset', baseDir: cwd, cwd });
  if (lookup.found === undefined) {
    fail(
      '--data',
      `${data} not found (looked at ${lookup.searched.join(', ')})`,
      'give a data file, a dataset folder or a name under datasets/',
    );
  }
  return lookup.found;
}

/**
 * The records to evaluate.
 * @param paths absolute data files or folders
 * @param opts `split`; `explicitFiles`: data files given on the command line are evaluated whole;
 *   `heldOut`: the task's val_set_size and seed, for datasets without validation files
 * @example resolveEvalSource(['/repo/datasets/github_code'], { split: 'validation' }).files[0].path; // .../validation.jsonl
 */
export function resolveEvalSource(
  paths: readonly string[],
  opts: { split: EvalSplit; explicitFiles?: boolean; heldOut?: { valSetSize: number; seed: number } | null },
): EvalSource {
  const shown = paths.map((p) => displayPath(p)).join(', ');
  const files = resolveDataset(paths);
  if (opts.explicitFiles && paths.every((p) => statSync(p).isFile())) {
    return { files: files.train, heldOut: null, description: `all records of ${shown}` };
  }
  if (opts.split === 'test') {
    if (files.test.length === 0) {
      fail(
        shown,
        'the dataset has no test split (no test.* files)',
        'evaluate --split validation, or give --data FILE',
      );
    }
    return { files: files.test, heldOut: null, description: `test split of ${shown}` };
  }
  if (files.validation.length > 0) {
    return { files: files.validation, heldOut: null, description: `validation split of ${shown}` };
  }
  const heldOut = opts.heldOut;
  if (heldOut && heldOut.valSetSize > 0) {
    const size = heldOut.valSetSize < 1 ? `${heldOut.valSetSize * 100}%` : `${heldOut.valSetSize} records`;
    return {
      files: files.train,
      heldOut,
      description: `validation records held out of ${shown} (val_set_size ${size}, seed ${heldOut.seed})`,
    };
  }
  return fail(
    shown,
    'the dataset has no validation split (no validation.* files)',
    heldOut
      ? 'set val_set_size in the task file, add validation files, or give --data FILE'
      : 'give --data FILE to evaluate every record of a file, or a task file with val_set_size',
  );
}
