/**
 * The four layers of the precedence, each built from its source and checked by the schema:
 * the task file, the --set overrides, the recipe's defaults and the built-in defaults.
 */
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Problem, Where } from '../util/index.js';
import { checkMapping, suggestKey } from './check-mapping.js';
import { checkValue, keyPath } from './check-value.js';
import type { Layer, LoadContext } from './layers.js';
import type { PlacedRecipe } from './recipe.js';
import { builtinDefault, KEY_ALIASES, keySchema, TASK_KEYS, type TaskKey } from './schema.js';
import { parseSetArg, type SetOverride } from './set-overrides.js';
import type { ValueSource } from './task-config.js';
import type { YamlMapping } from './yaml-source.js';

/** The layers, highest precedence first. */
export interface Layers {
  set: Layer;
  file: Layer;
  recipe: Layer;
  defaults: Layer;
}

/** Settings read from a file, each placed by `whereOf`; relative paths resolve against `baseDir`. */
function fileSettings(
  values: Iterable<[string, unknown]>,
  source: ValueSource,
  whereOf: (key: string, path: readonly PropertyKey[]) => Where,
  baseDir: string | null,
): Layer {
  const layer: Layer = new Map();
  for (const [key, value] of values) {
    layer.set(key, { value, source, where: (path = []) => whereOf(key, path), fromSet: false, baseDir });
  }
  return layer;
}

/** The task file's keys, each checked by the schema at its own position. */
export function taskFileLayer(mapping: YamlMapping, ctx: LoadContext): Layer {
  const checked = checkMapping(mapping, shapeOf(), ctx.problems, {
    notSupported: ctx.notSupported,
    aliases: KEY_ALIASES,
  });
  const values = [...checked].map(([key, c]): [string, unknown] => [key, c.value]);
  return fileSettings(
    values,
    'task file',
    (key, path) => mapping.where(checked.get(key)!.entry, path),
    ctx.taskDir,
  );
}

function shapeOf() {
  return Object.fromEntries(TASK_KEYS.map((k) => [k, keySchema(k)]));
}

/** `--set key=value` overrides, checked by the same schema; dotted keys set one entry of a map. */
export function setOverrideLayer(args: readonly string[], ctx: LoadContext): Layer {
  const layer: Layer = new Map();
  for (const arg of args) {
    const s = parseSetArg(arg);
    if ('problem' in s) {
      ctx.problems.push(s.problem);
      continue;
    }
    const refused = refusedSetKey(s, ctx.notSupported);
    if (refused) {
      ctx.problems.push(refused);
      continue;
    }
    const before = layer.get('fields')?.value as Record<string, unknown> | undefined;
    const value = s.path.length > 0 ? { ...before, [s.path[0]!]: s.value } : s.value;
    const checked = checkValue(keySchema(s.key as TaskKey), value);
    if (!checked.ok) {
      for (const issue of checked.issues) {
        const inner = issue.path.slice(s.path.length);
        const prefix = inner.length > 0 ? `${keyPath(s.key, issue.path)}: ` : '';
        ctx.problems.push({ where: s.where, message: prefix + issue.text, fix: issue.fix });
      }
      continue;
    }
    const where = s.path.length > 0 ? `--set ${s.key}` : s.where;
    layer.set(s.key, {
      value: checked.value,
      source: '--set',
      where: () => where,
      fromSet: true,
      baseDir: ctx.cwd,
    });
  }
  return layer;
}

/** Why `--set` cannot set this key: unknown, not supported yet, or a sub-key of a key without any. */
function refusedSetKey(s: SetOverride, notSupported: ReadonlySet<string>): Problem | undefined {
  if (!(TASK_KEYS as string[]).includes(s.key)) {
    return { where: s.where, message: 'unknown key', fix: suggestKey(s.key, TASK_KEYS, KEY_ALIASES) };
  }
  if (notSupported.has(s.key)) {
    return {
      where: s.where,
      message: 'not supported yet',
      fix: 'remove it; this version of mft cannot honour it',
    };
  }
  if (s.path.length > 0 && (s.key !== 'fields' || s.path.length > 1)) {
    return {
      where: s.where,
      message: `${s.key} has no sub-key ${s.path.join('.')}`,
      fix: `--set ${s.key}=...`,
    };
  }
  return undefined;
}

/** The recipe's defaults, placed in the recipe file; paths in them resolve against the package. */
export function recipeLayer(placed: PlacedRecipe | undefined, ctx: LoadContext): Layer {
  if (!placed) return new Map();
  const values = Object.entries(placed.recipe.defaults).filter(([key]) => {
    if (!ctx.notSupported.has(key)) return true;
    ctx.problems.push({ where: placed.whereDefault(key), message: `defaults.${key}: not supported yet` });
    return false;
  });
  return fileSettings(values, 'recipe', placed.whereDefault, null);
}

/** The built-in defaults, including the two computed ones: `output_dir` and `cache_dir`. */
export function defaultLayer(ctx: LoadContext, now: Date): Layer {
  const layer: Layer = new Map();
  const add = (key: string, value: unknown) => layer.set(key, defaultSetting(value, ctx));
  for (const key of TASK_KEYS) {
    const v = builtinDefault(key);
    if (v !== undefined) add(key, v);
  }
  const stem = basename(ctx.configFile).replace(/\.ya?ml$/i, '');
  add('output_dir', join(ctx.cwd, 'checkpoints', 'runs', `${stem}-${timestamp(now)}`));
  const envCache = ctx.env['MFT_CACHE_DIR'];
  add('cache_dir', envCache ? resolve(ctx.cwd, envCache) : join(homedir(), '.cache', 'mft'));
  return layer;
}

/** A built-in default, placed at the task file. */
export function defaultSetting(value: unknown, ctx: LoadContext) {
  return { value, source: 'default' as const, where: () => ctx.shown, fromSet: false, baseDir: ctx.cwd };
}

/** Local time as YYYYMMDD-HHMMSS, for run folder names. */
export function timestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
