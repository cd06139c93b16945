/**
 * The configuration reference, generated from the schema: `mft config schema` prints it and
 * docs/task-files.md's table is its `--markdown` form, so the two cannot disagree.
 */
import { z } from 'zod';
import { KEY_GROUPS, keySchema, TASK_KEYS, type TaskKey } from './schema.js';

/** One key of the reference. */
export interface SchemaRow {
  key: TaskKey;
  group: string;
  /** `int > 0`, `auto|tensorflow|wasm|cpu`, ... */
  type: string;
  /** The built-in default as YAML (`0.05`, `all-linear`, `null`), or where it comes from (`recipe`). */
  default: string;
  description: string;
}

interface KeyMeta {
  type?: string;
  defaultText?: string;
  description?: string;
}

function metaOf(s: z.ZodType): KeyMeta {
  return (z.globalRegistry.get(s) ?? {}) as KeyMeta;
}

// The type label sits on the innermost schema; .default() / .optional() wrap it.
function typeOf(s: z.ZodType): string {
  let cur: z.ZodType = s;
  for (;;) {
    const t = metaOf(cur).type;
    if (t) return t;
    if (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional || cur instanceof z.ZodNullable) {
      cur = cur.unwrap() as z.ZodType;
    } else {
      return 'any';
    }
  }
}

/** A value written the way a task file would write it: `0.05`, `1e-8`, `all-linear`, `[q_proj, v_proj]`. */
export function yamlValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') {
    if (v === Number.POSITIVE_INFINITY) return '.inf';
    return Math.abs(v) > 0 && Math.abs(v) < 1e-4 ? v.toExponential() : String(v);
  }
  if (Array.isArray(v)) return `[${v.map(yamlValue).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}: ${yamlValue(x)}`)
      .join(', ')}}`;
  }
  return String(v);
}

/** Every task key with its group, type, default and description, in table order. */
export function configSchemaRows(): SchemaRow[] {
  const groupOf = new Map<string, string>();
  for (const [group, keys] of Object.entries(KEY_GROUPS)) for (const k of keys) groupOf.set(k, group);
  return TASK_KEYS.map((key) => {
    const s = keySchema(key);
    const meta = metaOf(s);
    const parsed = s.safeParse(undefined);
    const builtin = parsed.success && parsed.data !== undefined ? yamlValue(parsed.data) : undefined;
    return {
      key,
      group: groupOf.get(key)!,
      type: typeOf(s),
      default: meta.defaultText ?? builtin ?? (parsed.success && parsed.data === null ? 'null' : 'none'),
      description: s.description ?? '',
    };
  });
}

/** The reference as markdown: one table per group (docs/task-files.md's configuration reference). */
export function schemaMarkdown(): string {
  // `|` would end the cell and `<stem>` would read as an HTML tag.
  const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('<', '&lt;');
  const out: string[] = [];
  for (const group of Object.keys(KEY_GROUPS)) {
    out.push(`**${group}**`, '', '| key | type | default | description |', '| --- | --- | --- | --- |');
    for (const r of configSchemaRows().filter((row) => row.group === group)) {
      out.push(`| \`${r.key}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`);
    }
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** The reference as aligned plain text, one key per line under a heading per group. */
export function schemaText(): string {
  const rows = configSchemaRows();
  const wKey = Math.max(...rows.map((r) => r.key.length));
  const wType = Math.max(...rows.map((r) => r.type.length));
  const wDefault = Math.max(...rows.map((r) => r.default.length));
  const out: string[] = [];
  for (const group of Object.keys(KEY_GROUPS)) {
    out.push(`# ${group}`);
    for (const r of rows.filter((row) => row.group === group)) {
      out.push(
        `${r.key.padEnd(wKey)}  ${r.type.padEnd(wType)}  ${r.default.padEnd(wDefault)}  ${r.description}`,
      );
    }
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}
