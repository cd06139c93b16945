// Builds the optional OpenBLAS binding (native/blas) with node-gyp. It is optional: a machine without
// a C compiler or Node's headers keeps onnxruntime's kernels, so a failure prints one line and exits 0.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'blas');
// npm names its bundled node-gyp in lifecycle scripts; outside them, look beside npm.
const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp ?? bundled;
const result = existsSync(gyp)
  ? spawnSync(process.execPath, [gyp, 'rebuild', '--directory', dir], { encoding: 'utf8' })
  : { status: 1, stdout: '', stderr: `node-gyp not found (${gyp})` };
if (result.status !== 0) {
  const lines = `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => /error|not found/i.test(l));
  process.stderr.write(
    `mft: the OpenBLAS binding was not built (${(lines[0] ?? 'node-gyp failed').trim()}); matrix products use onnxruntime-node (see docs/backends.md)\n`,
  );
}
