import { expect } from 'vitest';
import { MftError } from '../../src/util/index.js';

/** The message of the MftError `fn` throws; fails the test when it throws something else or nothing. */
export function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MftError);
    return (e as Error).message;
  }
  throw new Error('expected an MftError');
}
