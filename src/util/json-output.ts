/**
 * What `--json` prints: every key in snake_case, the habit of Hugging Face and axolotl files
 * (`train_loss`, `eval_steps`), whatever the TypeScript names. A key that is not a plain
 * identifier (a tensor name, a path) is data and is kept as it is.
 */

/** `adapterDir` -> `adapter_dir`, `tokensPerSecond` -> `tokens_per_second`; other keys unchanged. */
export function snakeCase(key: string): string {
  if (!/^[a-z][A-Za-z0-9]*$/.test(key)) return key;
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** A copy of `value` with the keys of every object in it in snake_case. */
export function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[snakeCase(k)] = snakeCaseKeys(v);
    return out;
  }
  return value;
}

/**
 * The `--json` text of a command's result, snake_case keys.
 * @param indent 2 for the multi-line reports, 0 for one-line results
 */
export function jsonOutput(value: unknown, indent = 0): string {
  return `${JSON.stringify(snakeCaseKeys(value), null, indent || undefined)}\n`;
}
