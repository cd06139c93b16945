/**
 * Read a task file into a `TaskConfig`: YAML with positions, every key checked by the schema,
 * the recipe's defaults merged, paths resolved, cross-field rules checked, and every problem of
 * the file reported together. Precedence, lowest to highest:
 *
 *     built-in default < recipe < task file < --set
 *
 * and the source of each value is kept in `config.sources`.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { cachedHubSnapshot, hubOffline, parseHubRef, resolveHubModel } from '../hub/index.js';
import { displayPath, MftError, type Problem } from '../util/index.js';
import { checkMapping, suggestKey } from './check-mapping.js';
import { checkValue, keyPath } from './check-value.js';
import { type Layer, readMaxPositions, resolveInput, type Setting } from './layers.js';
import { resolveNamedPath, resolveOutputPath } from './paths.js';
import { deepFreeze, loadPlacedRecipe, type PlacedRecipe, shippedRecipeNames } from './recipe.js';
import { builtinDefault, KEY_ALIASES, keySchema, TASK_KEYS, type TaskKey } from './schema.js';
import { parseSetArg } from './set-overrides.js';
import { didYouMean } from './suggest.js';
import { NOT_SUPPORTED_YET } from './support.js';
import type { TaskConfig, TaskValues, ValueSource } from './task-config.js';
import { readYamlMapping } from './yaml-source.js';

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

/** `loadTaskConfig` with the set of keys that are not supported yet given explicitly (for tests). */
export async function loadTaskConfigWith(
  path: string,
  opts: LoadTaskConfigOptions,
  notSupported: ReadonlySet<string>,
): Promise<TaskConfig> {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const configFile = resolve(cwd, path);
  const shown = path;
  const taskDir = dirname(configFile);
  const text = readTaskFile(configFile, shown);

  const problems: Problem[] = [];
  const report = (s: Setting, key: string, path: readonly PropertyKey[], message: string, fix?: string) => {
    const prefix = s.fromSet && path.length === 0 ? '' : `${keyPath(key, path)}: `;
    problems.push({ where: s.where(path), message: prefix + message, fix });
  };

  // 1) The task file: YAML with positions, each key checked by the schema.
  const mapping = readYamlMapping(text, shown);
  problems.push(...mapping.problems);
  if (!mapping.ok) throw new MftError(problems);
  const fileLayer: Layer = new Map();
  for (const [key, { value, entry }] of checkMapping(mapping, shapeOf(), problems, {
    notSupported,
    aliases: KEY_ALIASES,
  })) {
    fileLayer.set(key, {
      value,
      source: 'task file',
      where: (p = []) => mapping.where(entry, p),
      fromSet: false,
      baseDir: taskDir,
    });
  }

  // 2) --set overrides, checked by the same schema; dotted keys set one entry of a map.
  const setLayer: Layer = new Map();
  for (const arg of opts.set ?? []) {
    const s = parseSetArg(arg);
    if ('problem' in s) {
      problems.push(s.problem);
      continue;
    }
    if (!(TASK_KEYS as string[]).includes(s.key)) {
      problems.push({
        where: s.where,
        message: 'unknown key',
        fix: suggestKey(s.key, TASK_KEYS, KEY_ALIASES),
      });
      continue;
    }
    if (notSupported.has(s.key)) {
      problems.push({
        where: s.where,
        message: 'not supported yet',
        fix: 'remove it; this version of mft cannot honour it',
      });
      continue;
    }
    let value = s.value;
    if (s.path.length > 0) {
      if (s.key !== 'fields' || s.path.length > 1) {
        problems.push({
          where: s.where,
          message: `${s.key} has no sub-key ${s.path.join('.')}`,
          fix: `--set ${s.key}=...`,
        });
        continue;
      }
      const before = setLayer.get('fields')?.value as Record<string, unknown> | undefined;
      value = { ...before, [s.path[0]!]: s.value };
    }
    const checked = checkValue(keySchema(s.key as TaskKey), value);
    if (!checked.ok) {
      for (const issue of checked.issues) {
        const inner = issue.path.slice(s.path.length);
        const prefix = inner.length > 0 ? `${keyPath(s.key, issue.path)}: ` : '';
        problems.push({ where: s.where, message: prefix + issue.text, fix: issue.fix });
      }
      continue;
    }
    const where = s.path.length > 0 ? `--set ${s.key}` : s.where;
    setLayer.set(s.key, {
      value: checked.value,
      source: '--set',
      where: () => where,
      fromSet: true,
      baseDir: cwd,
    });
  }

  // 3) The recipe named by `task` gives the next layer of defaults.
  const taskSetting = setLayer.get('task') ?? fileLayer.get('task');
  let placed: PlacedRecipe | undefined;
  if (!taskSetting) {
    problems.push({
      where: shown,
      message: 'task: required',
      fix: `add a line like "task: code_completion" (recipes: ${shippedRecipeNames().join(', ')})`,
    });
  } else {
    placed = loadPlacedRecipe(
      taskSetting.value as string,
      { baseDir: taskSetting.baseDir, cwd, where: taskSetting.where(), fromSet: taskSetting.fromSet },
      problems,
    );
  }
  const recipeLayer: Layer = new Map();
  if (placed) {
    for (const [key, value] of Object.entries(placed.recipe.defaults)) {
      if (notSupported.has(key)) {
        problems.push({ where: placed.whereDefault(key), message: `defaults.${key}: not supported yet` });
        continue;
      }
      const p = placed;
      recipeLayer.set(key, {
        value,
        source: 'recipe',
        where: (path = []) => p.whereDefault(key, path),
        fromSet: false,
        baseDir: null,
      });
    }
  }

  // 4) Built-in defaults, including the two computed ones.
  const defaultLayer: Layer = new Map();
  const addDefault = (key: string, value: unknown) =>
    defaultLayer.set(key, { value, source: 'default', where: () => shown, fromSet: false, baseDir: cwd });
  for (const key of TASK_KEYS) {
    const v = builtinDefault(key);
    if (v !== undefined) addDefault(key, v);
  }
  const stem = basename(configFile).replace(/\.ya?ml$/i, '');
  addDefault('output_dir', join(cwd, 'checkpoints', 'runs', `${stem}-${timestamp(opts.now ?? new Date())}`));
  const envCache = env['MFT_CACHE_DIR'];
  addDefault('cache_dir', envCache ? resolve(cwd, envCache) : join(homedir(), '.cache', 'mft'));

  // 5) Merge: the highest layer that has a key wins.
  const layers: Layer[] = [setLayer, fileLayer, recipeLayer, defaultLayer];
  const winner = (key: string): Setting | undefined =>
    layers.map((l) => l.get(key)).find((s) => s !== undefined);
  const chosen = new Map<string, Setting>();
  for (const key of TASK_KEYS) {
    const s = winner(key);
    if (s) chosen.set(key, s);
  }

  // warmup_steps and warmup_ratio are one setting: the highest layer that sets either decides,
  // and setting both in that layer is an error.
  const warmupLayer = layers.slice(0, 3).find((l) => l.has('warmup_steps') || l.has('warmup_ratio'));
  if (warmupLayer) {
    const steps = warmupLayer.get('warmup_steps');
    const ratio = warmupLayer.get('warmup_ratio');
    if (steps && ratio) {
      report(
        ratio,
        'warmup_ratio',
        [],
        'set either warmup_steps or warmup_ratio, not both',
        'remove one of them',
      );
    }
    for (const key of ['warmup_steps', 'warmup_ratio'] as const) {
      chosen.set(key, warmupLayer.get(key) ?? defaultLayer.get(key)!);
    }
  }

  // fields: the recipe's map, with entries replaced by the task file, then by --set.
  let fields: Record<string, string> | undefined;
  if (placed) {
    const recipeFields = placed.recipe.fields;
    fields = { ...recipeFields };
    let top: Setting | undefined;
    for (const s of [fileLayer.get('fields'), setLayer.get('fields')]) {
      if (!s) continue;
      for (const [name, column] of Object.entries(s.value as Record<string, string>)) {
        if (!(name in recipeFields)) {
          const reads = Object.keys(recipeFields).join(', ');
          report(
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
    const recipeFile = displayPath(placed.recipe.file, cwd);
    chosen.set('fields', {
      value: fields,
      source: top?.source ?? 'recipe',
      where: top?.where ?? (() => recipeFile),
      fromSet: top?.fromSet ?? false,
      baseDir: null,
    });
  }

  // 6) Keys without a value anywhere.
  const maxSteps = chosen.get('max_steps')?.value ?? null;
  for (const key of TASK_KEYS) {
    if (chosen.has(key)) continue;
    if (key === 'task') continue;
    if (key === 'dataset') {
      problems.push({
        where: shown,
        message: 'dataset: required',
        fix: 'add a line like "dataset: github_code" (a name in datasets/ or a path)',
      });
    } else if (key === 'num_epochs' && maxSteps !== null) {
      // max_steps alone bounds the run: as many epochs as those steps take.
      addDefault('num_epochs', Number.POSITIVE_INFINITY);
      chosen.set(key, defaultLayer.get(key)!);
    } else if (placed) {
      const recipeFile = displayPath(placed.recipe.file, cwd);
      problems.push({
        where: shown,
        message: `${key}: no value; the recipe ${placed.recipe.name} gives no default`,
        fix:
          key === 'num_epochs'
            ? 'set num_epochs or max_steps'
            : `set ${key} here or in the defaults of ${recipeFile}`,
      });
    }
  }

  // 7) Paths: inputs must exist; outputs are made absolute.
  const values: Record<string, unknown> = {};
  for (const key of TASK_KEYS) values[key] = chosen.get(key)?.value;
  const dataset = chosen.get('dataset');
  if (dataset) {
    const list = Array.isArray(dataset.value) ? (dataset.value as string[]) : [dataset.value as string];
    values['dataset'] = list.map((item, i) => {
      const at = Array.isArray(dataset.value) ? [i] : [];
      return resolveInput(dataset, 'dataset', item, at, cwd, report);
    });
  }
  let maxPositions: { value: number; file: string } | undefined;
  const baseModel = chosen.get('base_model');
  if (baseModel) {
    const value = baseModel.value as string;
    const hub = parseHubRef(value);
    const local = resolveNamedPath(value, { kind: 'base_model', baseDir: baseModel.baseDir, cwd }).found;
    // org/name[@revision] that is no local folder: the Hugging Face Hub (through its cache).
    // Offline and not cached, it is only a path that does not exist.
    const fromHub = hub !== null && !local && !(hubOffline(env) && !cachedHubSnapshot(hub, env));
    const dir =
      hub && fromHub
        ? await resolveHubModel(hub, {
            env,
            source: baseModel.where([]),
            log: opts.log ?? ((line) => process.stderr.write(`mft: ${line}\n`)),
          })
        : resolveInput(baseModel, 'base_model', value, [], cwd, report);
    values['base_model'] = dir;
    if (dir !== undefined) maxPositions = readMaxPositions(baseModel, dir, report);
  }
  for (const key of ['output_dir', 'cache_dir'] as const) {
    const s = chosen.get(key)!;
    values[key] = resolveOutputPath(s.value as string, s.baseDir ?? cwd);
  }
  if (placed) values['task'] = placed.recipe.name;

  // 8) Rules across keys.
  const seqLen = chosen.get('sequence_len');
  if (seqLen && maxPositions && (seqLen.value as number) > maxPositions.value) {
    report(
      seqLen,
      'sequence_len',
      [],
      `${seqLen.value} is more than the model's max_position_embeddings ${maxPositions.value} (${maxPositions.file})`,
      `set sequence_len to at most ${maxPositions.value}`,
    );
  }
  const fim = chosen.get('fim_rate');
  if (placed && fim && (fim.value as number) > 0 && placed.recipe.format !== 'code_completion') {
    report(
      fim,
      'fim_rate',
      [],
      `fill-in-the-middle needs the code_completion format; recipe ${placed.recipe.name} has format ${placed.recipe.format}`,
      'set fim_rate: 0, or use task: code_completion',
    );
  }

  if (problems.length > 0) throw new MftError(sortProblems(problems, shown));

  const sources = {} as Record<keyof TaskValues, ValueSource>;
  for (const key of TASK_KEYS) sources[key] = chosen.get(key)!.source;
  const config = { ...(values as unknown as TaskValues), recipe: placed!.recipe, configFile, sources };
  return deepFreeze(config);
}

function shapeOf() {
  return Object.fromEntries(TASK_KEYS.map((k) => [k, keySchema(k)]));
}

function readTaskFile(file: string, shown: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new MftError({ where: shown, message: 'task file not found', fix: 'check the path' });
    if (code === 'EISDIR')
      throw new MftError({ where: shown, message: 'is a folder, expected a task .yaml file' });
    throw new MftError({ where: shown, message: `cannot read the task file: ${(e as Error).message}` });
  }
}

/** Local time as YYYYMMDD-HHMMSS, for run folder names. */
export function timestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Problems placed in the task file come first, by line and column; the rest keep their order. */
function sortProblems(problems: Problem[], shown: string): Problem[] {
  const pos = (p: Problem): [number, number] | undefined => {
    if (!p.where?.startsWith(`${shown}:`)) return undefined;
    const m = /^(\d+):(\d+)$/.exec(p.where.slice(shown.length + 1));
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  };
  const placed = problems.filter((p) => pos(p) !== undefined);
  placed.sort((a, b) => {
    const [la, ca] = pos(a)!;
    const [lb, cb] = pos(b)!;
    return la - lb || ca - cb;
  });
  return [...placed, ...problems.filter((p) => pos(p) === undefined)];
}
