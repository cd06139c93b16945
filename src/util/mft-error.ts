/**
 * The one error class for user mistakes (bad task file, malformed record, corrupt checkpoint...).
 * The CLI prints each problem on its own line, place first, and exits 2; any other error is a bug.
 */
export interface Problem {
  /** Where the problem is: `file:line:col`, `file:line`, `--set key`, a key path or a record index. */
  where?: string;
  /** What is wrong, starting with the key or field when there is one: `lora_alpha: expected a number, got "sixteen"`. */
  message: string;
  /** How to fix it, printed as `(fix: ...)`. */
  fix?: string;
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
  const head = p.where ? `${p.where}: ${p.message}` : p.message;
  return p.fix ? `${head} (fix: ${p.fix})` : head;
}

/** Shorthand: throw one user-facing problem. */
export function fail(where: string | undefined, message: string, fix?: string): never {
  throw new MftError({ where, message, fix });
}
