import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run the `mft` CLI from source (through tsx) in a child process. */
export function runCli(
  args: string[],
  opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {},
): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', `${REPO_ROOT}test/cli/cli-entry.ts`, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    input: opts.input,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Dawn (native code) prints its Vulkan limit notes to stderr when it creates an adapter. */
export const withoutDawnNotes = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => !/^Warning: .* artificially reduced/.test(l))
    .join('\n');
