import { isAbsolute, relative, sep } from 'node:path';

/**
 * A path as messages show it: relative to `cwd` when inside it (`.` for `cwd` itself), else as given.
 * @example displayPath('/work/mft/configs/a.yaml', '/work/mft') === 'configs/a.yaml'
 */
export function displayPath(path: string, cwd: string = process.cwd()): string {
  const rel = relative(cwd, path);
  if (rel === '') return '.';
  return rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) ? path : rel;
}
