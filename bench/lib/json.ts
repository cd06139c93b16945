/**
 * JSON as the repo's formatter (biome) lays it out, so result files pass `npm run lint` as written:
 * objects one key per line, arrays on one line when that line fits in 110 columns.
 */
const LINE_WIDTH = 110;
const INDENT = '  ';

function format(value: unknown, indent: string, prefixWidth: number): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const inner = indent + INDENT;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const flat = `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
    const primitives = value.every((v) => v === null || typeof v !== 'object');
    if (primitives && prefixWidth + flat.length + 1 <= LINE_WIDTH) return flat;
    return `[\n${value.map((v) => inner + format(v, inner, inner.length)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return '{}';
  const lines = entries.map(([k, v]) => {
    const key = `${inner}${JSON.stringify(k)}: `;
    return key + format(v, inner, key.length);
  });
  return `{\n${lines.join(',\n')}\n${indent}}`;
}

/** `value` as formatted JSON text with a final newline. */
export function formatJson(value: unknown): string {
  return `${format(value, '', 0)}\n`;
}
