/**
 * The config stage: task files and recipes, validated with positions, merged by precedence
 * (--set > task file > recipe > default) and resolved into one frozen `TaskConfig`.
 */
export { type LoadTaskConfigOptions, loadTaskConfig } from './load-task-config.js';
export { isBareName, packageRoot, resolveNamedPath } from './paths.js';
export {
  EVAL_METRICS,
  type EvalMetric,
  FORMATS,
  loadRecipe,
  RECIPE_FORMATS,
  type Recipe,
  type RecipeFormat,
  type TrainOn,
} from './recipe.js';
export { TASK_KEYS, TASK_SCHEMA, type TaskKey } from './schema.js';
export { configSchemaRows, type SchemaRow, schemaMarkdown, schemaText } from './schema-docs.js';
export { configTable, taskValues } from './show-config.js';
export { NOT_SUPPORTED_YET } from './support.js';
export type { TaskConfig, TaskValues, ValueSource } from './task-config.js';
