/**
 * How the user can run mft again, for the commands a run prints after it ("next:", "resume with:").
 * `npm ci` in a clone puts no `mft` on PATH, so a bare `mft ...` would fail there:
 *
 *   an `mft` on PATH that is this package (npm install -g, npm link)   -> `mft`
 *     (not the folders npx / npm run put first on PATH: they are gone once it exits)
 *   the current directory inside this package (a clone)                -> `npx mft`
 *   anywhere else                                                      -> `node <path>/bin/mft.js`
 */
import { accessSync, constants, realpathSync } from 'node:fs';
import { delimiter, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This package's root (the folder of package.json), from src/cli or dist/cli alike. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function realOrNull(path: string): string | null {
  try {
    accessSync(path, constants.X_OK);
    return realpathSync(path);
  } catch {
    return null;
  }
}

/**
 * The command prefix that runs this mft from `cwd`.
 * @example mftInvocation() // 'npx mft' in a clone after npm ci
 */
export function mftInvocation(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
  root: string = PACKAGE_ROOT,
): string {
  const ownBin = realOrNull(join(root, 'bin', 'mft.js'));
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '' || isNpmExecBin(dir)) continue;
    const found = realOrNull(join(dir, 'mft'));
    if (found !== null && found === ownBin) return 'mft';
  }
  const rel = relative(realOrDir(root), realOrDir(cwd));
  if (!rel.startsWith('..') && !rel.startsWith('/')) return 'npx mft';
  return `node ${join(root, 'bin', 'mft.js')}`;
}

/** A bin folder that only exists on PATH while npm runs a command (`npx`, `npm run`). */
function isNpmExecBin(dir: string): boolean {
  const parts = dir.split(/[\\/]/).filter((p) => p !== '');
  return parts.includes('_npx') || (parts.at(-1) === '.bin' && parts.at(-2) === 'node_modules');
}

function realOrDir(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
