/**
 * A resolved config as plain values (for JSON and `config.resolved.yaml`) and as the aligned
 * `key  value  (source)` table that `mft config check` prints.
 */

import { TASK_KEYS } from './schema.js';
import { yamlValue } from './schema-docs.js';
import type { TaskConfig, TaskValues } from './task-config.js';

/** The task keys of a config as one plain object, in table order (no recipe, sources or file). */
export function taskValues(config: TaskConfig): TaskValues {
  const out: Record<string, unknown> = {};
  for (const key of TASK_KEYS) out[key] = config[key];
  return out as unknown as TaskValues;
}

/**
 * One line per key: `lora_alpha  16  (task file)`; a recipe source names the recipe.
 * @example configTable(config).split('\n')[0] // 'task    code_completion    (task file)'
 */
export function configTable(config: TaskConfig): string {
  const rows = TASK_KEYS.map((key) => {
    const source = config.sources[key];
    return [
      key,
      yamlValue(config[key]),
      source === 'recipe' ? `(recipe ${config.recipe.name})` : `(${source})`,
    ];
  });
  const wKey = Math.max(...rows.map((r) => r[0]!.length));
  const wValue = Math.max(...rows.map((r) => r[1]!.length));
  return `${rows.map(([k, v, s]) => `${k!.padEnd(wKey)}  ${v!.padEnd(wValue)}  ${s}`).join('\n')}\n`;
}
