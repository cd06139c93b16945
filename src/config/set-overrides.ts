/**
 * `--set key=value` overrides from the command line. The value is read as one YAML scalar or flow
 * collection (`8`, `2e-4`, `cosine`, `null`, `[q_proj, v_proj]`); a dotted key sets one entry of
 * a map (`--set fields.text=content`). Problems are placed at `--set key`.
 */
import { isCollection, isScalar, parseDocument } from 'yaml';
import type { Problem } from '../util/index.js';

/** One parsed `--set`. */
export interface SetOverride {
  /** The top-level key (`fields` for `fields.text`). */
  key: string;
  /** The rest of a dotted key (`['text']` for `fields.text`), empty for a plain key. */
  path: string[];
  value: unknown;
  /** `--set fields.text`, the place of any problem with it. */
  where: string;
}

/** Parse one `--set` argument: the override, or the problem with it. */
export function parseSetArg(arg: string): SetOverride | { problem: Problem } {
  const eq = arg.indexOf('=');
  const dotted = (eq < 0 ? arg : arg.slice(0, eq)).trim();
  const where = `--set ${dotted}`;
  const parts = dotted.split('.');
  if (eq < 0 || parts.some((p) => p === '')) {
    return {
      problem: { where: `--set ${arg}`, message: 'expected key=value', fix: 'write it like --set lora_r=8' },
    };
  }
  const doc = parseDocument(arg.slice(eq + 1));
  const node = doc.contents;
  if (doc.errors.length > 0 || (node !== null && !isScalar(node) && !(isCollection(node) && node.flow))) {
    return {
      problem: {
        where,
        message: `expected one YAML value, got ${JSON.stringify(arg.slice(eq + 1))}`,
        fix: 'a number, a word, null, or a flow list like [q_proj, v_proj]',
      },
    };
  }
  return { key: parts[0]!, path: parts.slice(1), value: doc.toJSON() as unknown, where };
}
