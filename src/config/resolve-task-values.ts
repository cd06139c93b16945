/**
 * The merged settings made into values: inputs must exist (a base model may come from the Hugging
 * Face Hub), outputs are made absolute, and the rules across keys are checked.
 */
import { cachedHubSnapshot, hubOffline, parseHubRef, resolveHubModel } from '../hub/index.js';
import { formatWhere } from '../util/index.js';
import { type LoadContext, readMaxPositions, resolveInput, type Setting } from './layers.js';
import { resolveNamedPath, resolveOutputPath } from './paths.js';
import type { PlacedRecipe } from './recipe.js';
import { TASK_KEYS } from './schema.js';

/** The value of every key, paths resolved, and the model's `max_position_embeddings` if read. */
export interface ResolvedValues {
  values: Record<string, unknown>;
  maxPositions: { value: number; file: string } | undefined;
}

/**
 * Resolve the paths among the chosen settings.
 * @param opts.log lines about a Hub download of `base_model`
 */
export async function resolveTaskValues(
  chosen: ReadonlyMap<string, Setting>,
  placed: PlacedRecipe | undefined,
  ctx: LoadContext,
  opts: { log: (line: string) => void },
): Promise<ResolvedValues> {
  const values: Record<string, unknown> = {};
  for (const key of TASK_KEYS) values[key] = chosen.get(key)?.value;
  const dataset = chosen.get('dataset');
  if (dataset) {
    const list = Array.isArray(dataset.value) ? (dataset.value as string[]) : [dataset.value as string];
    values['dataset'] = list.map((item, i) => {
      const at = Array.isArray(dataset.value) ? [i] : [];
      return resolveInput(dataset, 'dataset', item, at, ctx.cwd, ctx.report);
    });
  }
  let maxPositions: ResolvedValues['maxPositions'];
  const baseModel = chosen.get('base_model');
  if (baseModel) {
    const dir = await resolveBaseModel(baseModel, ctx, opts.log);
    values['base_model'] = dir;
    if (dir !== undefined) maxPositions = readMaxPositions(baseModel, dir, ctx.report);
  }
  for (const key of ['output_dir', 'cache_dir'] as const) {
    const s = chosen.get(key)!;
    values[key] = resolveOutputPath(s.value as string, s.baseDir ?? ctx.cwd);
  }
  if (placed) values['task'] = placed.recipe.name;
  return { values, maxPositions };
}

/**
 * A local folder, or org/name[@revision] that is no local folder: the Hugging Face Hub (through
 * its cache). Offline and not cached, a Hub name is only a path that does not exist.
 */
async function resolveBaseModel(
  s: Setting,
  ctx: LoadContext,
  log: (line: string) => void,
): Promise<string | undefined> {
  const value = s.value as string;
  const hub = parseHubRef(value);
  const local = resolveNamedPath(value, { kind: 'base_model', baseDir: s.baseDir, cwd: ctx.cwd }).found;
  const fromHub = hub !== null && !local && !(hubOffline(ctx.env) && !cachedHubSnapshot(hub, ctx.env));
  if (hub && fromHub) return resolveHubModel(hub, { env: ctx.env, source: formatWhere(s.where([])), log });
  return resolveInput(s, 'base_model', value, [], ctx.cwd, ctx.report);
}

/** The rules across keys: sequence_len within the model's positions; FIM only for code. */
export function checkAcrossKeys(
  chosen: ReadonlyMap<string, Setting>,
  placed: PlacedRecipe | undefined,
  maxPositions: ResolvedValues['maxPositions'],
  ctx: LoadContext,
): void {
  const seqLen = chosen.get('sequence_len');
  if (seqLen && maxPositions && (seqLen.value as number) > maxPositions.value) {
    ctx.report(
      seqLen,
      'sequence_len',
      [],
      `${seqLen.value} is more than the model's max_position_embeddings ${maxPositions.value} (${maxPositions.file})`,
      `set sequence_len to at most ${maxPositions.value}`,
    );
  }
  const fim = chosen.get('fim_rate');
  if (placed && fim && (fim.value as number) > 0 && placed.recipe.format !== 'code_completion') {
    ctx.report(
      fim,
      'fim_rate',
      [],
      `fill-in-the-middle needs the code_completion format; recipe ${placed.recipe.name} has format ${placed.recipe.format}`,
      'set fim_rate: 0, or use task: code_completion',
    );
  }
}
