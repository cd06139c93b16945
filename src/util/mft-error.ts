/**
 * The one error class for user mistakes (bad task file, malformed record, corrupt checkpoint...).
 * The CLI prints each problem on its own line, place first, and exits 2; any other error is a bug.
 */
export interface Problem {
  /**
   * Where the problem is: a position in a text file, or a place in words (`file`, `file:line`,
   * `--set key`, a key path or a record index).
   */
  where?: Where;
  /** What is wrong, starting with the key or field when there is one: `lora_alpha: expected a number, got "sixteen"`. */
  message: string;
  /** How to fix it, printed as `(fix: ...)`. */
  fix?: string;
}

/** A 1-based line and column in a text file, printed `file:line:col`. */
export interface FilePosition {
  file: string;
  line: number;
  col: number;
}

/** The place of a problem: a position in a file, or a place in words. */
export type Where = string | FilePosition;

/** `file:line:col` for a position; a place in words as it is. */
export function formatWhere(where: Where): string {
  return typeof where === 'string' ? where : `${where.file}:${where.line}:${where.col}`;
}

export class MftError extends Error {
  readonly problems: readonly Problem[];

  constructor(problems: Problem | Problem[]) {
    const list = Array.isArray(problems) ? problems : [problems];
    super(list.map(formatProblem).join('\n'));
    this.name = 'MftError';
    this.problems = list;
  }
}

/** `where: message (fix: ...)`, the one-line form of a problem. */
export function formatProblem(p: Problem): string {
  const head = p.where ? `${formatWhere(p.where)}: ${p.message}` : p.message;
  return p.fix ? `${head} (fix: ${p.fix})` : head;
}

/** Shorthand: throw one user-facing problem. */
export function fail(where: Where | undefined, message: string, fix?: string): never {
  throw new MftError({ where, message, fix });
}
