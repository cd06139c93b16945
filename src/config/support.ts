/**
 * Task keys that are declared in the schema but not implemented yet. Setting one in a task file or
 * with `--set` is an error ("not supported yet") rather than a value silently ignored; a key
 * leaves this set in the change that makes the code honour it.
 */
export const NOT_SUPPORTED_YET: ReadonlySet<string> = new Set<string>([]);
