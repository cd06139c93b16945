/**
 * Read a task file into a `TaskConfig`: YAML with positions, every key checked by the schema,
 * the recipe's defaults merged, paths resolved, cross-field rules checked, and every problem of
 * the file reported together. Precedence, lowest to highest:
 *
 *     built-in default < recipe < task file < --set
 *
 * and the source of each value is kept in `config.sources`.
 */
import { dirname, resolve } from 'node:path';
import { type FilePosition, MftError, type Problem } from '../util/index.js';
import { type LoadContext, reporter, type Setting } from './layers.js';
import { mergeLayers, requireValues } from './merge-layers.js';
import { readConfigFile } from './read-config-file.js';
import { deepFreeze, loadPlacedRecipe, type PlacedRecipe, shippedRecipeNames } from './recipe.js';
import { checkAcrossKeys, resolveTaskValues } from './resolve-task-values.js';
import { TASK_KEYS } from './schema.js';
import { NOT_SUPPORTED_YET } from './support.js';
import type { TaskConfig, TaskValues, ValueSource } from './task-config.js';
import { defaultLayer, type Layers, recipeLayer, setOverrideLayer, taskFileLayer } from './task-layers.js';
import { readYamlMapping, type YamlMapping } from './yaml-source.js';

/** Options of `loadTaskConfig`. */
export interface LoadTaskConfigOptions {
  /** `key=value` overrides as given to `--set`; they win over everything else. */
  set?: readonly string[];
  /** The current directory (default: `process.cwd()`). */
  cwd?: string;
  /** The clock for the default `output_dir` name (default: now). */
  now?: Date;
  /** The environment, for `MFT_CACHE_DIR` (default: `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Lines about a Hub download of `base_model` (default: stderr). */
  log?: (line: string) => void;
}

/**
 * Load, validate and resolve a task file.
 * @param path the task file, as the user typed it (messages name it this way)
 * @param opts.set `--set key=value` overrides
 * @throws MftError with one problem per mistake found in the file, its recipe and the overrides
 * @example const config = await loadTaskConfig('configs/code_completion.yaml', {set: ['lora_r=8']});
 */
export async function loadTaskConfig(path: string, opts: LoadTaskConfigOptions = {}): Promise<TaskConfig> {
  return loadTaskConfigWith(path, opts, NOT_SUPPORTED_YET);
}

/**
 * `loadTaskConfig` with the set of keys that are not supported yet given explicitly (for tests).
 * The steps, each reporting into one list of problems:
 *     read the file -> parse YAML -> check each key -> --set -> recipe -> defaults -> merge
 *     -> required keys -> resolve paths -> rules across keys
 */
export async function loadTaskConfigWith(
  path: string,
  opts: LoadTaskConfigOptions,
  notSupported: ReadonlySet<string>,
): Promise<TaskConfig> {
  const ctx = loadContext(path, opts, notSupported);
  const mapping = readTaskMapping(ctx);
  const layers: Layers = {
    file: taskFileLayer(mapping, ctx),
    set: setOverrideLayer(opts.set ?? [], ctx),
    recipe: new Map(),
    defaults: defaultLayer(ctx, opts.now ?? new Date()),
  };
  const placed = placeRecipe(layers.set.get('task') ?? layers.file.get('task'), ctx);
  layers.recipe = recipeLayer(placed, ctx);
  const chosen = mergeLayers(layers, placed, ctx);
  requireValues(chosen, placed, ctx);
  const log = opts.log ?? ((line: string) => process.stderr.write(`mft: ${line}\n`));
  const { values, maxPositions } = await resolveTaskValues(chosen, placed, ctx, { log });
  checkAcrossKeys(chosen, placed, maxPositions, ctx);
  if (ctx.problems.length > 0) throw new MftError(sortProblems(ctx.problems, ctx.shown));

  const sources = {} as Record<keyof TaskValues, ValueSource>;
  for (const key of TASK_KEYS) sources[key] = chosen.get(key)!.source;
  const recipe = placed!.recipe;
  return deepFreeze({ ...(values as unknown as TaskValues), recipe, configFile: ctx.configFile, sources });
}

function loadContext(
  path: string,
  opts: LoadTaskConfigOptions,
  notSupported: ReadonlySet<string>,
): LoadContext {
  const cwd = opts.cwd ?? process.cwd();
  const configFile = resolve(cwd, path);
  const problems: Problem[] = [];
  return {
    configFile,
    shown: path,
    taskDir: dirname(configFile),
    cwd,
    env: opts.env ?? process.env,
    notSupported,
    problems,
    report: reporter(problems),
  };
}

/** The task file as a YAML mapping; throws when it cannot be read as one. */
function readTaskMapping(ctx: LoadContext): YamlMapping {
  const read = readConfigFile(ctx.configFile, { shown: ctx.shown, kind: 'task file' });
  if ('problem' in read) throw new MftError(read.problem);
  const mapping = readYamlMapping(read.text, ctx.shown);
  ctx.problems.push(...mapping.problems);
  if (!mapping.ok) throw new MftError(sortProblems(ctx.problems, ctx.shown));
  return mapping;
}

/** The recipe named by `task` (it gives the next layer of defaults); `task` itself is required. */
function placeRecipe(task: Setting | undefined, ctx: LoadContext): PlacedRecipe | undefined {
  if (!task) {
    ctx.problems.push({
      where: ctx.shown,
      message: 'task: required',
      fix: `add a line like "task: code_completion" (recipes: ${shippedRecipeNames().join(', ')})`,
    });
    return undefined;
  }
  return loadPlacedRecipe(
    task.value as string,
    { baseDir: task.baseDir, cwd: ctx.cwd, where: task.where(), fromSet: task.fromSet },
    ctx.problems,
  );
}

/** Problems placed in the task file come first, by line and column; the rest keep their order. */
function sortProblems(problems: readonly Problem[], shown: string): Problem[] {
  const pos = (p: Problem): FilePosition | undefined =>
    typeof p.where === 'object' && p.where.file === shown ? p.where : undefined;
  const placed = problems.filter((p) => pos(p) !== undefined);
  placed.sort((a, b) => pos(a)!.line - pos(b)!.line || pos(a)!.col - pos(b)!.col);
  return [...placed, ...problems.filter((p) => pos(p) === undefined)];
}
