/**
 * Which files make up a dataset's train / validation / test splits.
 *
 * `dataset:` in a task file resolves to one or more absolute paths, each:
 * - a data file (`.jsonl`, `.json`, `.csv`, `.tsv`, each optionally gzipped; `.arrow`, `.parquet`): train data;
 * - a Hugging Face `save_to_disk` folder of one split (`state.json` lists its `.arrow` shards): train;
 * - a `DatasetDict` folder (`dataset_dict.json`, one `save_to_disk` sub-folder per split): its
 *   `train`, `validation` (or `valid`, `val`, `dev`) and `test` splits;
 * - a dataset folder (as under `datasets/`) with files named `train.<ext>` or `train-*.<ext>`,
 *   and optionally `validation.*` / `test.*` the same way;
 * - a folder of `data-NNNNN-of-NNNNN.arrow` shards without `state.json`: train.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { displayPath, fail } from '../../util/index.js';

export type SourceKind = 'jsonl' | 'json' | 'arrow' | 'parquet' | 'csv';

export interface SourceFile {
  path: string;
  kind: SourceKind;
}

export interface DatasetFiles {
  train: SourceFile[];
  validation: SourceFile[];
  test: SourceFile[];
}

export type SplitName = keyof DatasetFiles;

const ACCEPTED = '.jsonl, .json, .csv, .tsv (each also .gz), .arrow (IPC file or stream), .parquet';

/** The reader for a file name, or null when the extension is not a data format. */
export function sourceKind(name: string): SourceKind | null {
  const n = name.toLowerCase();
  if (/\.(jsonl|ndjson)(\.gz)?$/.test(n)) return 'jsonl';
  if (/\.json(\.gz)?$/.test(n)) return 'json';
  if (/\.(csv|tsv)(\.gz)?$/.test(n)) return 'csv';
  if (n.endsWith('.arrow')) return 'arrow';
  if (n.endsWith('.parquet')) return 'parquet';
  return null;
}

const SPLIT_ALIASES: Record<string, SplitName> = {
  train: 'train',
  validation: 'validation',
  valid: 'validation',
  val: 'validation',
  dev: 'validation',
  test: 'test',
};

function readJsonFile(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    fail(displayPath(path), `cannot read JSON (${(e as Error).message})`);
  }
}

/** The `.arrow` shards of a `save_to_disk` split folder, in `state.json` order. */
function saveToDiskShards(dir: string): SourceFile[] {
  const state = readJsonFile(join(dir, 'state.json'));
  const listed = state._data_files;
  const names = Array.isArray(listed)
    ? listed
        .map((f) => (f as { filename?: unknown }).filename)
        .filter((f): f is string => typeof f === 'string')
    : readdirSync(dir)
        .filter((f) => f.endsWith('.arrow'))
        .sort();
  if (names.length === 0) fail(displayPath(dir), 'state.json lists no data files', 'save the dataset again');
  return names.map((name) => {
    const path = join(dir, name);
    if (!existsSync(path)) {
      fail(displayPath(path), 'listed in state.json but missing', 'copy the whole save_to_disk folder');
    }
    return { path, kind: 'arrow' as const };
  });
}

function resolveFolder(dir: string, out: DatasetFiles): void {
  if (existsSync(join(dir, 'dataset_dict.json'))) {
    const dict = readJsonFile(join(dir, 'dataset_dict.json'));
    const splits = Array.isArray(dict.splits) ? (dict.splits as unknown[]) : [];
    for (const split of splits) {
      if (typeof split !== 'string') continue;
      const target = SPLIT_ALIASES[split.toLowerCase()];
      if (target) out[target].push(...saveToDiskShards(join(dir, split)));
    }
    return;
  }
  if (existsSync(join(dir, 'state.json'))) {
    out.train.push(...saveToDiskShards(dir));
    return;
  }
  const entries = readdirSync(dir).sort();
  // Shards named as `datasets` writes them (`data-00000-of-00001.arrow`) without state.json: train.
  const shards = entries.filter((f) => /^data-\d+-of-\d+\.arrow$/.test(f));
  if (
    shards.length > 0 &&
    !entries.some((f) => sourceKind(f) && SPLIT_ALIASES[f.split(/[-_.]/)[0]!.toLowerCase()])
  ) {
    out.train.push(...shards.map((f) => ({ path: join(dir, f), kind: 'arrow' as const })));
    return;
  }
  for (const name of entries) {
    const kind = sourceKind(name);
    if (!kind) continue;
    const stem = name.slice(0, name.indexOf('.')).toLowerCase();
    const splitWord = stem.split(/[-_]/)[0]!;
    const target = SPLIT_ALIASES[splitWord];
    if (target) out[target].push({ path: join(dir, name), kind });
  }
}

/**
 * Resolve the `dataset:` paths of a task into the files of each split.
 * @param paths absolute paths of data files or folders
 * @example
 *   resolveDataset(['/repo/datasets/github_code']).train; // [{path: '.../train.jsonl', kind: 'jsonl'}]
 */
export function resolveDataset(paths: readonly string[]): DatasetFiles {
  const out: DatasetFiles = { train: [], validation: [], test: [] };
  for (const p of paths) {
    if (!existsSync(p))
      fail(displayPath(p), 'dataset path does not exist', 'check `dataset:` in the task file');
    if (statSync(p).isDirectory()) {
      const before = out.train.length;
      resolveFolder(p, out);
      if (out.train.length === before) {
        fail(
          displayPath(p),
          'no training data in this folder',
          `add train.<ext> (or train-*.<ext>) with <ext> one of ${ACCEPTED}, a save_to_disk folder or a DatasetDict`,
        );
      }
    } else {
      const kind = sourceKind(p);
      if (!kind) fail(displayPath(p), 'unknown data file type', `use one of ${ACCEPTED}`);
      out.train.push({ path: p, kind });
    }
  }
  return out;
}
