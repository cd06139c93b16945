/**
 * The argument parser of a repeatable option (`--set a=1 --set b=2`): each use appends its value.
 * @example program.option('--set <key=value>', 'override a key (repeatable)', collect, [])
 */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
