import { spawnSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { mftInvocation, PACKAGE_ROOT } from '../../src/cli/invocation.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const tmp = fileTempDir('invocation');

describe('mftInvocation: the printed next commands run', () => {
  test('`mft` when this package is on PATH (a global install or npm link)', () => {
    const bin = join(tmp, 'global-bin');
    spawnSync('mkdir', ['-p', bin]);
    symlinkSync(join(PACKAGE_ROOT, 'bin', 'mft.js'), join(bin, 'mft'));
    expect(mftInvocation({ PATH: `/nonexistent:${bin}` }, tmp)).toBe('mft');
  });

  test('`npx mft` inside the clone when no mft is on PATH, and that command runs', () => {
    expect(mftInvocation({ PATH: '/usr/bin:/bin' }, join(PACKAGE_ROOT, 'configs'))).toBe('npx mft');
    const r = spawnSync('npx', ['--no-install', 'mft', '--version'], { cwd: PACKAGE_ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  }, 180_000); // npx starts npm: slow on a loaded machine

  test('the bin folders npx puts on PATH while it runs do not count as an install', () => {
    for (const dir of ['_npx/05c7453150ff3227/node_modules/.bin', 'clone/node_modules/.bin']) {
      const bin = join(tmp, dir);
      spawnSync('mkdir', ['-p', bin]);
      symlinkSync(join(PACKAGE_ROOT, 'bin', 'mft.js'), join(bin, 'mft'));
      expect(mftInvocation({ PATH: `${bin}:/usr/bin` }, join(PACKAGE_ROOT, 'configs'))).toBe('npx mft');
    }
  });

  test('another mft on PATH is not taken for this one; outside the clone, node and the bin path', () => {
    const other = join(tmp, 'other-bin');
    spawnSync('mkdir', ['-p', other]);
    symlinkSync('/bin/true', join(other, 'mft'));
    expect(mftInvocation({ PATH: other }, '/')).toBe(`node ${join(PACKAGE_ROOT, 'bin', 'mft.js')}`);
  });
});
