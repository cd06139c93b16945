/**
 * The resolved configuration of a run: one frozen object with every task key (snake_case, as in
 * the task file), paths made absolute, plus the recipe and where each value came from.
 */
import type { z } from 'zod';
import type { Recipe } from './recipe.js';
import type { TASK_SCHEMA } from './schema.js';

/** Where a value came from, from lowest to highest precedence: default < recipe < task file < --set. */
export type ValueSource = 'default' | 'recipe' | 'task file' | '--set';

/** What the schema accepts for each key of a task file (every key optional there). */
type SchemaValues = z.output<typeof TASK_SCHEMA>;

/**
 * The value of every task key after merging and resolving (see `mft config schema`), derived from
 * the schema: every key has a value (the recipe's defaults and the computed paths filled in), and
 * - `task` is the recipe's name (`recipe.name`), whatever the task file wrote;
 * - `dataset` is the list of absolute paths of the data files or folders; `base_model`,
 *   `output_dir` and `cache_dir` are absolute paths;
 * - `num_epochs` is Infinity when only `max_steps` bounds the run;
 * - at most one of `warmup_steps` / `warmup_ratio` is non-zero;
 * - `fields` maps every field the recipe reads to a dataset column.
 */
export type TaskValues = {
  [K in Exclude<keyof SchemaValues, 'dataset'>]-?: Exclude<SchemaValues[K], undefined>;
} & {
  dataset: string[];
};

/** A loaded task file: every key resolved, plus its recipe, its file and the source of each value. */
export type TaskConfig = Readonly<TaskValues> & {
  readonly recipe: Recipe;
  /** Absolute path of the task file. */
  readonly configFile: string;
  /** Source of each task key's value. */
  readonly sources: Readonly<Record<keyof TaskValues, ValueSource>>;
};
