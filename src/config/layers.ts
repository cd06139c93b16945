/**
 * The layers of the precedence (built-in default < recipe < task file < --set), the loading context
 * they are built in, and the inputs they name: a dataset or base model must exist, and the model's
 * config.json bounds sequence_len.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Problem, Where } from '../util/index.js';
import { keyPath } from './check-value.js';
import { isBareName, isDirectory, NAMED_FOLDERS, packageRoot, resolveNamedPath } from './paths.js';
import { didYouMean } from './suggest.js';
import type { ValueSource } from './task-config.js';

/** A value in one layer of the precedence, with its place and the folder its paths are relative to. */
export interface Setting {
  value: unknown;
  source: ValueSource;
  /** The place of the value, or of the element at `path` inside it. */
  where(path?: readonly PropertyKey[]): Where;
  /** True for `--set` (the place already names the key). */
  fromSet: boolean;
  /** Relative paths resolve against this folder; null: package root, then the current directory. */
  baseDir: string | null;
}

/** One layer of the precedence: the settings it gives, by key. */
export type Layer = Map<string, Setting>;

/** Append a problem about a setting, placed at it (or at the element `path` inside its value). */
export type Report = (
  s: Setting,
  key: string,
  path: readonly PropertyKey[],
  message: string,
  fix?: string,
) => void;

/** The task file being loaded, where it is loaded from, and the problems found so far. */
export interface LoadContext {
  /** Absolute path of the task file. */
  configFile: string;
  /** The task file as the user typed it (messages name it this way). */
  shown: string;
  /** The task file's folder: paths it writes are relative to it. */
  taskDir: string;
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Keys declared but not implemented yet: setting one is an error. */
  notSupported: ReadonlySet<string>;
  /** Every problem found, in the order found (sorted by place when reported). */
  problems: Problem[];
  /** Append a problem placed at a setting. */
  report: Report;
}

/** A `Report` that appends to `problems`; a --set place already names its key. */
export function reporter(problems: Problem[]): Report {
  return (s, key, path, message, fix) => {
    const prefix = s.fromSet && path.length === 0 ? '' : `${keyPath(key, path)}: `;
    problems.push({ where: s.where(path), message: prefix + message, fix });
  };
}

/** Resolve a dataset or base model name or path; reports "not found" with the places searched. */
export function resolveInput(
  s: Setting,
  key: 'dataset' | 'base_model',
  value: string,
  at: readonly PropertyKey[],
  cwd: string,
  report: Report,
): string | undefined {
  const lookup = resolveNamedPath(value, { kind: key, baseDir: s.baseDir, cwd });
  if (lookup.found) return lookup.found;
  let fix: string;
  if (isBareName(value)) {
    const folder = NAMED_FOLDERS[key].folder;
    const names = listDir(join(packageRoot(), folder));
    fix =
      didYouMean(value, names) ??
      `give a name in ${folder}/ (${names.join(', ') || 'none shipped'}) or a path such as ./${value}`;
  } else if (s.fromSet) {
    fix = 'a relative path on the command line is relative to the current directory';
  } else if (s.source === 'task file') {
    fix = "a relative path is relative to the task file's folder";
  } else {
    fix = 'check the path';
  }
  report(s, key, at, `${JSON.stringify(value)} not found; searched ${lookup.searched.join(', ')}`, fix);
  return undefined;
}

/** `max_position_embeddings` from the model's config.json (a plain read; the model stage parses the rest). */
export function readMaxPositions(
  s: Setting,
  dir: string,
  report: Report,
): { value: number; file: string } | undefined {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    report(
      s,
      'base_model',
      [],
      `${file} not found`,
      'base_model must be a Hugging Face model folder with config.json',
    );
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    report(s, 'base_model', [], `${file} is not valid JSON: ${(e as Error).message}`);
    return undefined;
  }
  const v = (json as { max_position_embeddings?: unknown } | null)?.max_position_embeddings;
  return typeof v === 'number' ? { value: v, file } : undefined;
}

function listDir(dir: string): string[] {
  if (!isDirectory(dir)) return [];
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort();
}
