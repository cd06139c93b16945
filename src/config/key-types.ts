/**
 * The value types of task keys, as zod schemas with the exact messages mft prints
 * (`expected an integer`, `must be in [0, 1)`) and a short type label for the docs
 * (`int > 0`, `number in [0, 1)`), both built from the same bounds so they cannot disagree.
 */
import { z } from 'zod';

/** Numeric bounds; `gt`/`lt` are exclusive, `gte`/`lte` inclusive. */
export interface Bounds {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
}

/** `> 0`, `>= 1`, `in [0, 1)`, or '' without bounds. */
export function boundsText(b: Bounds): string {
  const lo = b.gt ?? b.gte;
  const hi = b.lt ?? b.lte;
  if (lo !== undefined && hi !== undefined) {
    return `in ${b.gt !== undefined ? '(' : '['}${lo}, ${hi}${b.lt !== undefined ? ')' : ']'}`;
  }
  if (b.gt !== undefined) return `> ${b.gt}`;
  if (b.gte !== undefined) return `>= ${b.gte}`;
  if (b.lt !== undefined) return `< ${b.lt}`;
  if (b.lte !== undefined) return `<= ${b.lte}`;
  return '';
}

function withBounds(base: z.ZodNumber, b: Bounds): z.ZodNumber {
  const error = `must be ${boundsText(b)}`;
  let s = base;
  if (b.gt !== undefined) s = s.gt(b.gt, { error });
  if (b.gte !== undefined) s = s.gte(b.gte, { error });
  if (b.lt !== undefined) s = s.lt(b.lt, { error });
  if (b.lte !== undefined) s = s.lte(b.lte, { error });
  return s;
}

function label(kind: string, b: Bounds): string {
  const t = boundsText(b);
  return t ? `${kind} ${t}` : kind;
}

/** An integer within `b`. */
export function int(b: Bounds = {}) {
  return withBounds(z.int({ error: 'expected an integer' }), b).meta({ type: label('int', b) });
}

/** A finite number within `b`. */
export function num(b: Bounds = {}) {
  return withBounds(z.number({ error: 'expected a number' }), b).meta({ type: label('number', b) });
}

/** An integer within `b`, or null. */
export function intOrNull(b: Bounds = {}) {
  const inner = withBounds(z.int({ error: 'expected an integer or null' }), b);
  return inner.nullable().meta({ type: `${label('int', b)} or null` });
}

/** A number within `b`, or null. */
export function numOrNull(b: Bounds = {}) {
  const inner = withBounds(z.number({ error: 'expected a number or null' }), b);
  return inner.nullable().meta({ type: `${label('number', b)} or null` });
}

/** true or false. */
export function bool() {
  return z.boolean({ error: 'expected true or false' }).meta({ type: 'bool' });
}

/** One of a fixed set of words. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `expected one of ${values.join(', ')}` }).meta({ type: values.join('|') });
}

/** A non-empty string (`kind` names it in the docs: `path`, `name or path`). */
export function text(kind = 'string') {
  return z.string({ error: 'expected a string' }).min(1, { error: 'must not be empty' }).meta({ type: kind });
}

/** A map of names to non-empty strings (`fields: {text: content}`). */
export function stringMap() {
  return z
    .record(z.string(), z.string({ error: 'expected a string' }).min(1, { error: 'must not be empty' }), {
      error: 'expected a mapping of names to strings',
    })
    .meta({ type: 'map of string' });
}
