/**
 * The weights of a Hugging Face model directory, single-file or sharded:
 *
 *   model.safetensors                                  one file, or
 *   model.safetensors.index.json                       {"metadata": {"total_size": N},
 *   model-00001-of-00002.safetensors, ...               "weight_map": {tensor name: shard file}}
 *
 * Every shard header is validated when the checkpoint is opened; tensors are then read one at a
 * time from the shard that holds them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fail, MftError } from '../util/index.js';
import { SafetensorsFile, type TensorData, type TensorInfo } from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Read access to all tensors of a model directory. */
export interface CheckpointFiles {
  readonly dir: string;
  /** Shard file names (just `model.safetensors` when not sharded). */
  readonly files: readonly string[];
  /** Tensor names, shard by shard in header order. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Read one tensor; `shared` backs it with a SharedArrayBuffer. */
  read(name: string, opts?: { shared?: boolean }): TensorData;
  close(): void;
}

/**
 * Open the safetensors weights of a model directory (single file or shards + index).
 * @param dir the model directory
 * @example const ckpt = openCheckpoint('checkpoints/base/tinystories-260k'); ckpt.read('model.norm.weight'); ckpt.close();
 */
export function openCheckpoint(dir: string): CheckpointFiles {
  const indexPath = join(dir, INDEX_FILE);
  if (existsSync(indexPath)) return openSharded(dir, indexPath);
  const single = join(dir, SINGLE_FILE);
  if (!existsSync(single)) {
    fail(
      dir,
      `no ${SINGLE_FILE} or ${INDEX_FILE} in this directory`,
      'point at a Hugging Face model directory with safetensors weights',
    );
  }
  const file = SafetensorsFile.open(single);
  const byName = new Map(file.names().map((n) => [n, file] as const));
  return makeCheckpoint(dir, [file], byName);
}

function openSharded(dir: string, indexPath: string): CheckpointFiles {
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    fail(indexPath, `not valid JSON: ${(e as Error).message}`, 'download the index file again');
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    fail(indexPath, 'missing "weight_map" object', 'download the index file again');
  }
  const shardNames: string[] = [];
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard !== basename(shard) || shard === '..' || shard === '.') {
      fail(
        indexPath,
        `weight_map["${name}"]: ${JSON.stringify(shard)} is not a shard file name in this directory`,
      );
    }
    if (!shardNames.includes(shard)) shardNames.push(shard);
  }
  const files: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) {
      const path = join(dir, shard);
      if (!existsSync(path))
        fail(indexPath, `shard ${shard} is listed in weight_map but missing`, 'download the missing shard');
      files.push(SafetensorsFile.open(path));
    }
    const byShard = new Map(shardNames.map((s, i) => [s, files[i] as SafetensorsFile]));
    const byName = new Map<string, SafetensorsFile>();
    const problems: { where: string; message: string; fix: string }[] = [];
    for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
      const file = byShard.get(shard) as SafetensorsFile;
      if (!file.has(name)) {
        problems.push({
          where: indexPath,
          message: `tensor "${name}" is mapped to ${shard}, which does not contain it`,
          fix: 'download the checkpoint again',
        });
      }
      byName.set(name, file);
    }
    for (const file of files) {
      for (const name of file.names()) {
        const owner = byName.get(name);
        if (owner !== file) {
          problems.push({
            where: file.path,
            message: owner
              ? `tensor "${name}" is also in ${basename(owner.path)}`
              : `tensor "${name}" is not listed in ${INDEX_FILE}`,
            fix: 'download the checkpoint again',
          });
        }
      }
    }
    if (problems.length > 0) throw new MftError(problems);
    return makeCheckpoint(dir, files, byName);
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

function makeCheckpoint(
  dir: string,
  files: SafetensorsFile[],
  byName: Map<string, SafetensorsFile>,
): CheckpointFiles {
  const order = files.flatMap((f) => f.names().filter((n) => byName.get(n) === f));
  const fileOf = (name: string): SafetensorsFile => {
    const f = byName.get(name);
    if (!f)
      fail(
        dir,
        `the checkpoint has no tensor "${name}"`,
        'check that the model directory matches config.json',
      );
    return f;
  };
  return {
    dir,
    files: Object.freeze(files.map((f) => basename(f.path))),
    names: () => [...order],
    has: (name) => byName.has(name),
    info: (name) => fileOf(name).info(name),
    read: (name, opts) => fileOf(name).read(name, opts),
    close: () => {
      for (const f of files) f.close();
    },
  };
}
