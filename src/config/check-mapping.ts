/**
 * The keys of a YAML mapping against a table of zod schemas: unknown keys (with a suggestion),
 * keys declared but not supported yet, and wrong values, each reported at its own line:col.
 */
import type { z } from 'zod';
import type { Problem } from '../util/index.js';
import { checkValue, keyPath } from './check-value.js';
import { didYouMean } from './suggest.js';
import type { YamlEntry, YamlMapping } from './yaml-source.js';

/** A valid value and the entry it came from. */
export interface CheckedEntry {
  value: unknown;
  entry: YamlEntry;
}

/**
 * Check every entry of `mapping` against `shape`; returns the valid values by key and appends
 * one problem per unknown key, unsupported key or wrong value to `problems`.
 * @param opts.notSupported keys that are declared but not implemented yet: setting one is an error
 * @param opts.exclude keys of `shape` not allowed here (a recipe's defaults cannot set `task`)
 */
export function checkMapping(
  mapping: YamlMapping,
  shape: Record<string, z.ZodType>,
  problems: Problem[],
  opts: {
    notSupported?: ReadonlySet<string>;
    exclude?: readonly string[];
    prefix?: string;
    aliases?: Readonly<Record<string, string>>;
  } = {},
): Map<string, CheckedEntry> {
  const out = new Map<string, CheckedEntry>();
  const prefix = opts.prefix ?? '';
  const allowed = Object.keys(shape).filter((k) => !opts.exclude?.includes(k));
  for (const entry of mapping.entries) {
    const { key } = entry;
    if (!allowed.includes(key)) {
      const excluded = opts.exclude?.includes(key) && key in shape;
      problems.push({
        where: mapping.whereKey(entry),
        message: `${prefix}${key}: ${excluded ? 'cannot be set here' : 'unknown key'}`,
        fix: excluded ? undefined : suggestKey(key, allowed, opts.aliases),
      });
      continue;
    }
    if (opts.notSupported?.has(key)) {
      problems.push({
        where: mapping.whereKey(entry),
        message: `${prefix}${key}: not supported yet`,
        fix: 'remove it; this version of mft cannot honour it',
      });
      continue;
    }
    const checked = checkValue(shape[key]!, entry.value);
    if (!checked.ok) {
      for (const issue of checked.issues) {
        problems.push({
          where: mapping.where(entry, issue.path),
          message: `${prefix}${keyPath(key, issue.path)}: ${issue.text}`,
          fix: issue.fix,
        });
      }
      continue;
    }
    out.set(key, { value: checked.value, entry });
  }
  return out;
}

/** `did you mean lora_alpha?` for a misspelt key, or the key's name in mft for another tool's name. */
export function suggestKey(
  key: string,
  allowed: readonly string[],
  aliases: Readonly<Record<string, string>> = {},
): string | undefined {
  const alias = Object.hasOwn(aliases, key) ? aliases[key] : undefined;
  return alias ? `mft calls it ${alias}` : didYouMean(key, allowed);
}
