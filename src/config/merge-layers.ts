/**
 * The merge of the layers: for each key the highest layer that has it wins, with two keys merged
 * differently (`warmup_steps` / `warmup_ratio` are one setting; `fields` is merged entry by entry),
 * then the keys that no layer gives are reported.
 */
import { displayPath } from '../util/index.js';
import type { LoadContext, Setting } from './layers.js';
import type { PlacedRecipe } from './recipe.js';
import { TASK_KEYS } from './schema.js';
import { didYouMean } from './suggest.js';
import { defaultSetting, type Layers } from './task-layers.js';

/** The winning setting of every key that has one. */
export function mergeLayers(
  layers: Layers,
  placed: PlacedRecipe | undefined,
  ctx: LoadContext,
): Map<string, Setting> {
  const order = [layers.set, layers.file, layers.recipe, layers.defaults];
  const chosen = new Map<string, Setting>();
  for (const key of TASK_KEYS) {
    const s = order.map((l) => l.get(key)).find((x) => x !== undefined);
    if (s) chosen.set(key, s);
  }
  chooseWarmup(layers, chosen, ctx);
  if (placed) chosen.set('fields', mergeFields(layers, placed, ctx));
  return chosen;
}

// warmup_steps and warmup_ratio are one setting: the highest layer that sets either decides,
// and setting both in that layer is an error.
function chooseWarmup(layers: Layers, chosen: Map<string, Setting>, ctx: LoadContext): void {
  const layer = [layers.set, layers.file, layers.recipe].find(
    (l) => l.has('warmup_steps') || l.has('warmup_ratio'),
  );
  if (!layer) return;
  const ratio = layer.get('warmup_ratio');
  if (layer.has('warmup_steps') && ratio) {
    ctx.report(
      ratio,
      'warmup_ratio',
      [],
      'set either warmup_steps or warmup_ratio, not both',
      'remove one of them',
    );
  }
  for (const key of ['warmup_steps', 'warmup_ratio'] as const) {
    chosen.set(key, layer.get(key) ?? layers.defaults.get(key)!);
  }
}

/** The recipe's `fields`, with entries replaced by the task file, then by --set. */
function mergeFields(layers: Layers, placed: PlacedRecipe, ctx: LoadContext): Setting {
  const recipeFields = placed.recipe.fields;
  const fields: Record<string, string> = { ...recipeFields };
  let top: Setting | undefined;
  for (const s of [layers.file.get('fields'), layers.set.get('fields')]) {
    if (!s) continue;
    for (const [name, column] of Object.entries(s.value as Record<string, string>)) {
      if (!Object.hasOwn(recipeFields, name)) {
        const reads = Object.keys(recipeFields).join(', ');
        ctx.report(
          s,
          'fields',
          [name],
          `the recipe ${placed.recipe.name} reads no field ${name} (it reads ${reads})`,
          didYouMean(name, Object.keys(recipeFields)),
        );
        continue;
      }
      fields[name] = column;
    }
    top = s;
  }
  const recipeFile = displayPath(placed.recipe.file, ctx.cwd);
  return {
    value: fields,
    source: top?.source ?? 'recipe',
    where: top?.where ?? (() => recipeFile),
    fromSet: top?.fromSet ?? false,
    baseDir: null,
  };
}

/**
 * Report the keys that have no value in any layer; `num_epochs` with `max_steps` set is not one:
 * max_steps alone bounds the run, so it gets as many epochs as those steps take (Infinity).
 */
export function requireValues(
  chosen: Map<string, Setting>,
  placed: PlacedRecipe | undefined,
  ctx: LoadContext,
): void {
  const maxSteps = chosen.get('max_steps')?.value ?? null;
  for (const key of TASK_KEYS) {
    if (chosen.has(key) || key === 'task') continue;
    if (key === 'dataset') {
      ctx.problems.push({
        where: ctx.shown,
        message: 'dataset: required',
        fix: 'add a line like "dataset: github_code" (a name in datasets/ or a path)',
      });
    } else if (key === 'num_epochs' && maxSteps !== null) {
      chosen.set(key, defaultSetting(Number.POSITIVE_INFINITY, ctx));
    } else if (placed) {
      const recipeFile = displayPath(placed.recipe.file, ctx.cwd);
      ctx.problems.push({
        where: ctx.shown,
        message: `${key}: no value; the recipe ${placed.recipe.name} gives no default`,
        fix:
          key === 'num_epochs'
            ? 'set num_epochs or max_steps'
            : `set ${key} here or in the defaults of ${recipeFile}`,
      });
    }
  }
}
