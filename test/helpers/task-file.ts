import { writeFileSync } from 'node:fs';

/** Write a flat task file, one `key: value` line per entry; returns `path`. */
export function writeTaskFile(path: string, keys: Record<string, string | number | boolean>): string {
  const lines = Object.entries(keys).map(([k, v]) => `${k}: ${v}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}
