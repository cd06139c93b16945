/**
 * Where names and paths in task files point. Three roots:
 * - a path the user writes (`./data/x.jsonl`, `../models/m`, `/abs`, `~/x`) resolves against the
 *   folder of the file that wrote it (the current directory for `--set`);
 * - a bare name (`dataset: github_code`, `task: code_completion`) is looked up in its named folder
 *   (`datasets/`, `recipes/`, `checkpoints/base/`) under mft's package root, then under the
 *   current directory;
 * - a path that comes from a recipe or a built-in default resolves against the package root,
 *   then the current directory.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

let cachedRoot: string | undefined;

/** The folder holding mft's own package.json (where `recipes/`, `datasets/`, `checkpoints/base/` ship). */
export function packageRoot(): string {
  if (cachedRoot) return cachedRoot;
  // Walk up from this file: it sits in src/config/ when run from source, dist/config/ when built.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'mft') {
      cachedRoot = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`mft's package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** True for a bare name (`github_code`): no slash, not starting with `.` or `~`, not absolute. */
export function isBareName(s: string): boolean {
  return !s.includes('/') && !s.includes('\\') && !s.startsWith('.') && !s.startsWith('~') && !isAbsolute(s);
}

/** `~/x` -> `$HOME/x`; other paths unchanged. */
export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

/** The named folder of each kind of bare name, and the suffix a name gets there. */
export const NAMED_FOLDERS = {
  task: { folder: 'recipes', suffix: '.yaml' },
  dataset: { folder: 'datasets', suffix: '' },
  base_model: { folder: 'checkpoints/base', suffix: '' },
} as const;

/** The result of a lookup: the first place that exists, and every place tried (in order). */
export interface Lookup {
  found: string | undefined;
  searched: string[];
}

/**
 * Resolve a name or path as written in a task file, recipe, default or `--set`.
 * @param value the string as written
 * @param opts.kind for a bare name, which named folder to look in (`dataset` -> `datasets/<name>`);
 *   without it a bare name is treated like a relative path
 * @param opts.baseDir the folder of the file that wrote it, or null when it comes from a recipe or
 *   a default (then the package root, then `cwd`)
 * @example resolveNamedPath('github_code', {kind: 'dataset', baseDir: '/home/u/tasks', cwd})
 */
export function resolveNamedPath(
  value: string,
  opts: { kind?: keyof typeof NAMED_FOLDERS; baseDir: string | null; cwd: string },
): Lookup {
  const written = expandHome(value);
  let candidates: string[];
  if (isAbsolute(written)) {
    candidates = [written];
  } else if (opts.kind && isBareName(written)) {
    const { folder, suffix } = NAMED_FOLDERS[opts.kind];
    const rel = join(folder, written + suffix);
    candidates = [join(packageRoot(), rel), resolve(opts.cwd, rel)];
  } else if (opts.baseDir !== null) {
    candidates = [resolve(opts.baseDir, written)];
  } else {
    candidates = [join(packageRoot(), written), resolve(opts.cwd, written)];
  }
  const searched = [...new Set(candidates)];
  return { found: searched.find((p) => existsSync(p)), searched };
}

/** Like `resolveNamedPath` without checking existence: the first candidate (for outputs). */
export function resolveOutputPath(value: string, baseDir: string): string {
  return resolve(baseDir, expandHome(value));
}

/** True when `p` is an existing folder. */
export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
