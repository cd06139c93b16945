/**
 * File-system faults that are the user's to fix (a full disk, a read-only or forbidden folder), as
 * MftErrors naming the path: the CLI exits 2 with them instead of printing a stack as for a bug.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { MftError } from './mft-error.js';

const USER_FAULTS: Readonly<Record<string, { message: string; fix: string }>> = {
  ENOSPC: {
    message: 'no space left on the device',
    fix: 'free space on that disk or write elsewhere (--output-dir / --out)',
  },
  EDQUOT: {
    message: 'disk quota exceeded',
    fix: 'free space in your quota or write elsewhere (--output-dir / --out)',
  },
  EROFS: {
    message: 'the file system is read-only',
    fix: 'write to a writable folder (--output-dir / --out)',
  },
  EACCES: {
    message: 'permission denied',
    fix: 'write to a folder you own (--output-dir / --out) or change its permissions',
  },
  EPERM: {
    message: 'operation not permitted',
    fix: 'write to a folder you own (--output-dir / --out) or change its attributes',
  },
  ENOTDIR: { message: 'a part of the path is a file, not a folder', fix: 'check the path' },
  ELOOP: {
    message: 'too many levels of symbolic links (a link that points at itself?)',
    fix: 'fix or remove the link',
  },
  EMFILE: { message: 'too many open files', fix: 'raise the limit (ulimit -n)' },
};

/** The error's code when it is a Node system error. */
function codeOf(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : null;
}

/**
 * The user-facing form of a file-system error, or null when it is not one the user can fix.
 * @param err what fs threw
 * @param path the file being written when the error carries none (write and fsync errors do not)
 * @example throw asUserFileError(e, target) ?? e;
 */
export function asUserFileError(err: unknown, path?: string): MftError | null {
  if (err instanceof MftError) return err;
  const code = codeOf(err);
  if (code === null) return null;
  const where = (err as NodeJS.ErrnoException).path ?? path;
  const syscall = (err as NodeJS.ErrnoException).syscall;
  // a missing parent when creating a folder is the user's path; other ENOENTs are checked where read
  if (code === 'ENOENT' && syscall === 'mkdir') {
    // a recursive mkdir on a read-only or forbidden disk reports ENOENT: ask the nearest folder
    // that exists why it cannot be written
    const denied = where ? whyNotWritable(where) : null;
    if (denied) return asUserFileError(denied, where);
    return new MftError({ where, message: 'a parent folder does not exist', fix: 'check the path' });
  }
  const fault = USER_FAULTS[code];
  if (!fault) return null;
  const doing = syscall ? ` (${syscall})` : '';
  return new MftError({ where, message: `${fault.message}${doing}, ${code}`, fix: fault.fix });
}

/** The error writing into the nearest existing ancestor of `path` gives (null when it is writable). */
function whyNotWritable(path: string): NodeJS.ErrnoException | null {
  let dir = dirname(path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    accessSync(dir, constants.W_OK);
    return null;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return Object.assign(err, { syscall: 'mkdir' });
  }
}
