/**
 * Recipes: how a record becomes tokens (format, the fields it reads, which tokens carry loss),
 * plus the task's default hyperparameters and eval metrics. `recipes/<name>.yaml` ships the
 * built-in ones; a task file may name its own recipe file instead.
 */
import { readdirSync } from 'node:fs';
import { z } from 'zod';
import { displayPath, MftError, type Problem, type Where } from '../util/index.js';
import { checkMapping } from './check-mapping.js';
import { bool, oneOf, stringMap, text } from './key-types.js';
import { isDirectory, packageRoot, resolveNamedPath } from './paths.js';
import { readConfigFile } from './read-config-file.js';
import { TASK_SCHEMA } from './schema.js';
import { didYouMean } from './suggest.js';
import type { TaskValues } from './task-config.js';
import { nestedMapping, readYamlMapping, type YamlMapping } from './yaml-source.js';

/** How a record is turned into text and which part is trained on; implemented by `src/data/`. */
export const RECIPE_FORMATS = ['text', 'completion', 'alpaca', 'instruct', 'code_completion'] as const;
export type RecipeFormat = (typeof RECIPE_FORMATS)[number];

/** The fields each format reads (its `fields:` map has exactly these keys) and the loss rules it allows. */
export const FORMATS: Record<RecipeFormat, { fields: readonly string[]; trainOn: readonly TrainOn[] }> = {
  // field `text`; loss on every token
  text: { fields: ['text'], trainOn: ['all'] },
  // field `text`; loss on every token; optional fill-in-the-middle (fim_rate)
  code_completion: { fields: ['text'], trainOn: ['all'] },
  // prompt + completion; loss on the completion
  completion: { fields: ['prompt', 'completion'], trainOn: ['completion', 'all'] },
  // instruction, optional input, output; loss on the output
  alpaca: { fields: ['instruction', 'input', 'output'], trainOn: ['output', 'all'] },
  // a `messages` list [{role, content}], or one turn from `system` (optional) / `user` / `assistant`
  // columns, rendered with the tokenizer's chat template; loss on assistant turns
  instruct: { fields: ['messages', 'system', 'user', 'assistant'], trainOn: ['assistant', 'all'] },
};

export const TRAIN_ON = ['all', 'completion', 'output', 'assistant'] as const;
export type TrainOn = (typeof TRAIN_ON)[number];

/** The metrics an evaluation can report. */
export const EVAL_METRICS = [
  'loss',
  'perplexity',
  'token_accuracy',
  'exact_match',
  'edit_similarity',
  'line_completion',
] as const;
export type EvalMetric = (typeof EVAL_METRICS)[number];

/** The schema of a recipe file; `defaults` is checked key by key with the task schema. */
export const RECIPE_SCHEMA = z.strictObject({
  name: text('name').describe('the recipe name, as `task:` names it'),
  description: text().describe('one line on what the task is'),
  format: oneOf(RECIPE_FORMATS).describe('how a record becomes text (see FORMATS)'),
  fields: stringMap().describe('each field the format reads -> the default dataset column'),
  train_on: oneOf(TRAIN_ON).describe('which tokens carry loss'),
  add_eos: bool().describe('append the tokenizer EOS to every sample (trained on)'),
  defaults: z.unknown().optional().describe('default task keys (any key but task and fields)'),
  eval_metrics: z
    .array(oneOf(EVAL_METRICS))
    .min(1, { error: 'must not be an empty list' })
    .describe('metrics an evaluation reports'),
});

/** A loaded recipe. */
export interface Recipe {
  readonly name: string;
  readonly description: string;
  readonly format: RecipeFormat;
  /** Field the format reads -> default dataset column (`{prompt: 'prompt', completion: 'completion'}`). */
  readonly fields: Readonly<Record<string, string>>;
  readonly train_on: TrainOn;
  readonly add_eos: boolean;
  /** Task keys the recipe sets (paths as written; the task loader resolves them). */
  readonly defaults: Readonly<
    Partial<Omit<TaskValues, 'task' | 'dataset'>> & { dataset?: string | string[] }
  >;
  readonly eval_metrics: readonly EvalMetric[];
  /** Absolute path of the recipe file. */
  readonly file: string;
}

/** A recipe plus where each of its defaults is written, for messages about them. */
export interface PlacedRecipe {
  recipe: Recipe;
  /** The position of a default's value in the recipe file (the file alone if unknown). */
  whereDefault(key: string, path?: readonly PropertyKey[]): Where;
}

/** The names of the recipes shipped in `recipes/`. */
export function shippedRecipeNames(): string[] {
  const dir = `${packageRoot()}/recipes`;
  if (!isDirectory(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/**
 * Load and validate a recipe by name (`code_completion` -> `recipes/code_completion.yaml` under the
 * package root, then the current directory) or by path (relative to `baseDir`).
 * @example const recipe = loadRecipe('completion'); recipe.fields // {prompt: 'prompt', completion: 'completion'}
 */
export function loadRecipe(nameOrPath: string, opts: { baseDir?: string; cwd?: string } = {}): Recipe {
  const problems: Problem[] = [];
  const cwd = opts.cwd ?? process.cwd();
  const placed = loadPlacedRecipe(
    nameOrPath,
    { baseDir: opts.baseDir ?? cwd, cwd, where: undefined },
    problems,
  );
  if (!placed || problems.length > 0) throw new MftError(problems);
  return placed.recipe;
}

/**
 * Load a recipe, appending its problems to `problems` (returns undefined when it cannot be used).
 * `where` places a "not found" problem (the `task:` value that named it).
 */
export function loadPlacedRecipe(
  nameOrPath: string,
  opts: { baseDir: string | null; cwd: string; where: Where | undefined; fromSet?: boolean },
  problems: Problem[],
): PlacedRecipe | undefined {
  const lookup = resolveNamedPath(nameOrPath, { kind: 'task', baseDir: opts.baseDir, cwd: opts.cwd });
  // `--set task` is already named by the place; a file place needs the key in the message.
  const label = opts.fromSet ? '' : 'task: ';
  if (!lookup.found || isDirectory(lookup.found)) {
    const bare = !nameOrPath.includes('/') && !nameOrPath.startsWith('.');
    problems.push({
      where: opts.where,
      message: `${label}recipe ${JSON.stringify(nameOrPath)} not found; searched ${lookup.searched.join(', ')}`,
      fix: bare
        ? (didYouMean(nameOrPath, shippedRecipeNames()) ?? `use one of ${shippedRecipeNames().join(', ')}`)
        : 'give the path of a recipe .yaml file',
    });
    return undefined;
  }
  const file = lookup.found;
  const shown = displayPath(file, opts.cwd);
  const read = readConfigFile(file, { shown, kind: 'recipe' });
  if ('problem' in read) {
    problems.push(read.problem);
    return undefined;
  }
  const mapping = readYamlMapping(read.text, shown);
  const before = problems.length;
  problems.push(...mapping.problems);
  if (!mapping.ok) return undefined;

  const top = checkMapping(mapping, RECIPE_SCHEMA.shape, problems);
  for (const key of Object.keys(RECIPE_SCHEMA.shape)) {
    if (!top.has(key) && key !== 'defaults' && !mapping.entries.some((e) => e.key === key)) {
      problems.push({
        where: shown,
        message: `${key}: required in a recipe`,
        fix: `add a line "${key}: ..."`,
      });
    }
  }

  // defaults: task keys, each checked by the task schema at its own position.
  const defaultsEntry = mapping.entries.find((e) => e.key === 'defaults');
  let defaultsMapping: YamlMapping | undefined;
  const defaults: Record<string, unknown> = {};
  if (defaultsEntry) {
    defaultsMapping = nestedMapping(mapping, defaultsEntry);
    problems.push(...defaultsMapping.problems);
    const checked = checkMapping(defaultsMapping, TASK_SCHEMA.shape, problems, {
      // `task` names the recipe itself; the recipe's own `fields:` are the defaults of `fields`.
      exclude: ['task', 'fields'],
      prefix: 'defaults.',
    });
    for (const [k, v] of checked) defaults[k] = v.value;
  }

  const format = top.get('format')?.value as RecipeFormat | undefined;
  const fields = top.get('fields')?.value as Record<string, string> | undefined;
  const trainOn = top.get('train_on')?.value as TrainOn | undefined;
  if (format && fields) {
    const want = FORMATS[format].fields;
    const fieldsEntry = top.get('fields')!.entry;
    for (const f of Object.keys(fields)) {
      if (!want.includes(f)) {
        problems.push({
          where: mapping.where(fieldsEntry, [f]),
          message: `fields.${f}: the ${format} format reads no field ${f} (it reads ${want.join(', ')})`,
          fix: didYouMean(f, want),
        });
      }
    }
    for (const f of want) {
      if (!(f in fields)) {
        problems.push({
          where: mapping.where(fieldsEntry),
          message: `fields: missing ${f} (the ${format} format reads ${want.join(', ')})`,
          fix: `add "${f}: <column>"`,
        });
      }
    }
  }
  if (format && trainOn && !FORMATS[format].trainOn.includes(trainOn)) {
    problems.push({
      where: mapping.where(top.get('train_on')!.entry),
      message: `train_on: the ${format} format trains on ${FORMATS[format].trainOn.join(' or ')}, got ${JSON.stringify(trainOn)}`,
    });
  }
  if (problems.length > before) return undefined;

  const recipe: Recipe = deepFreeze({
    name: top.get('name')!.value as string,
    description: top.get('description')!.value as string,
    format: format!,
    fields: fields!,
    train_on: trainOn!,
    add_eos: top.get('add_eos')!.value as boolean,
    defaults: defaults as Recipe['defaults'],
    eval_metrics: top.get('eval_metrics')!.value as EvalMetric[],
    file,
  });
  return {
    recipe,
    whereDefault(key, path = []) {
      const entry = defaultsMapping?.entries.find((e) => e.key === key);
      return entry && defaultsMapping ? defaultsMapping.where(entry, path) : shown;
    },
  };
}

/** Freeze an object and everything inside it. */
export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
