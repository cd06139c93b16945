/**
 * One value against its zod schema, with the problem phrased the way mft prints it:
 * `expected a number, got "sixteen"`, `must be in [0, 1), got 1`, plus a suggestion for a
 * misspelt word. The caller adds the place and the key.
 */
import type { z } from 'zod';
import { didYouMean } from './suggest.js';

/** What is wrong with a value, and where inside it (`[1]` of a list, `.text` of a map). */
export interface ValueIssue {
  path: PropertyKey[];
  /** `expected an integer, got 8.5` */
  text: string;
  fix?: string;
}

/** The parsed value, or the issues (one per wrong element). */
export type Checked = { ok: true; value: unknown } | { ok: false; issues: ValueIssue[] };

/** Validate `value` with `schema`. */
export function checkValue(schema: z.ZodType, value: unknown): Checked {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, issues: r.error.issues.map((issue) => explain(issue, value)) };
}

type Issue = z.core.$ZodIssue;

function explain(issue: Issue, root: unknown): ValueIssue {
  const chosen = unwrapUnion(issue);
  const path = chosen.path.slice();
  const got = valueAt(root, path);
  const out: ValueIssue = { path, text: `${chosen.message}, got ${showValue(got)}` };
  if (chosen.code === 'invalid_value' && typeof got === 'string') {
    const fix = didYouMean(got, chosen.values.map(String));
    if (fix) out.fix = fix;
  }
  return out;
}

// A union (`all-linear` or a list of names) fails as a whole; when exactly one branch failed
// inside the value (a bad list element) rather than on its type, that element is the real problem.
function unwrapUnion(issue: Issue): Issue {
  if (issue.code !== 'invalid_union') return issue;
  const deep = issue.errors.filter((branch) =>
    branch.some((i) => i.path.length > 0 || (i.code !== 'invalid_type' && i.code !== 'invalid_value')),
  );
  if (deep.length !== 1) return issue;
  const inner = deep[0]![0]!;
  return unwrapUnion({ ...inner, path: [...issue.path, ...inner.path] } as Issue);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

/** A value as it appears in a message: strings quoted, others as compact JSON, long ones cut. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number') return String(v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** `lora_target_modules[1]`, `fields.text`: a key and a path inside its value. */
export function keyPath(key: string, path: readonly PropertyKey[] = []): string {
  return path.reduce<string>(
    (acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : `${acc}.${String(seg)}`),
    key,
  );
}
