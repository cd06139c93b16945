/**
 * Hub models through the Hugging Face cache, against a loopback Hub (HF_ENDPOINT); no test reaches
 * the internet.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadTaskConfig } from '../../src/config/index.js';
import { parseHubRef, resolveHubModel } from '../../src/hub/index.js';
import { MftError } from '../../src/util/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { type HubServer, startHubServer } from './hub-server.js';

const STORIES = 'checkpoints/base/tinystories-260k';
const COMMIT = 'a'.repeat(40);
const TAG_COMMIT = 'b'.repeat(40);
let hub: HubServer;

beforeAll(async () => {
  hub = await startHubServer({
    'org/stories': {
      dir: STORIES,
      revisions: { main: COMMIT, v1: TAG_COMMIT },
      extra: { 'pytorch_model.bin': 'not read by mft', 'notes/README.md': 'not read either' },
    },
    'org/private': { dir: STORIES, revisions: { main: COMMIT }, token: 'hf_secret' },
  });
});
afterAll(async () => {
  await hub.close();
  removeTempDirs();
});

const envWith = (home: string, more: Record<string, string> = {}) => ({
  HF_HOME: home,
  HF_ENDPOINT: hub.url,
  ...more,
});
const resolveIn = (home: string, id: string, more: Record<string, string> = {}) =>
  resolveHubModel(parseHubRef(id) as NonNullable<ReturnType<typeof parseHubRef>>, {
    env: envWith(home, more),
    log: () => {},
  });
const errorOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    if (e instanceof MftError)
      return e.problems.map((x) => `${x.where}: ${x.message} (fix: ${x.fix})`).join('\n');
    throw e;
  }
  throw new Error('expected an MftError');
};
/** The CLI in a child process, without blocking this process (which serves the loopback Hub). */
function runCliAsync(
  args: string[],
  env: Record<string, string>,
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `${REPO_ROOT}test/cli/cli-entry.ts`, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, HF_HUB_OFFLINE: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => ok({ status: code ?? -1, stdout, stderr }));
  });
}
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('Hub ids', () => {
  test('org/name[@revision]; paths and bare names are not Hub ids', () => {
    expect(parseHubRef('org/name')).toEqual({ repo: 'org/name', revision: 'main' });
    expect(parseHubRef('meta-llama/Llama-3.2-1B@v1.0')).toEqual({
      repo: 'meta-llama/Llama-3.2-1B',
      revision: 'v1.0',
    });
    for (const v of ['./org/name', '/abs/dir', 'a/b/c', 'tinystories-260k', '../x', 'org/..'])
      expect(parseHubRef(v)).toBeNull();
  });
});

describe('resolving a Hub model through the cache', () => {
  test('downloads only the files mft reads into the HF cache layout; a second run downloads nothing', async () => {
    const home = makeTempDir('hf-home');
    const start = hub.requests.length;
    const dir = await resolveIn(home, 'org/stories');
    const storage = join(home, 'hub', 'models--org--stories');
    expect(dir).toBe(join(storage, 'snapshots', COMMIT));
    expect(readFileSync(join(storage, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    for (const f of [
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'model.safetensors',
    ]) {
      expect(readFileSync(join(dir, f)).equals(readFileSync(join(STORIES, f)))).toBe(true);
    }
    const weights = join(dir, 'model.safetensors');
    expect(lstatSync(weights).isSymbolicLink()).toBe(true);
    expect(readlinkSync(weights)).toBe(
      `../../blobs/${sha256(readFileSync(join(STORIES, 'model.safetensors')))}`,
    );
    expect(existsSync(join(dir, 'pytorch_model.bin'))).toBe(false);
    const fetched = hub.requests.slice(start).filter((r) => r.includes('/resolve/'));
    expect(fetched.some((r) => r.includes('pytorch_model.bin') || r.includes('README'))).toBe(false);

    const again = hub.requests.length;
    expect(await resolveIn(home, 'org/stories')).toBe(dir);
    expect(hub.requests.slice(again).filter((r) => r.includes('/resolve/'))).toEqual([]);
    // Offline: no request at all.
    const offline = hub.requests.length;
    expect(await resolveIn(home, 'org/stories', { HF_HUB_OFFLINE: '1' })).toBe(dir);
    expect(hub.requests.length).toBe(offline);
  });

  test('a revision (tag) resolves to its commit and is recorded in refs/', async () => {
    const home = makeTempDir('hf-home');
    const dir = await resolveIn(home, 'org/stories@v1');
    expect(dir.endsWith(join('snapshots', TAG_COMMIT))).toBe(true);
    expect(readFileSync(join(home, 'hub', 'models--org--stories', 'refs', 'v1'), 'utf8')).toBe(TAG_COMMIT);
  });

  test('an interrupted download resumes from its .incomplete file with a Range request', async () => {
    const home = makeTempDir('hf-home');
    const full = readFileSync(join(STORIES, 'model.safetensors'));
    const blobs = join(home, 'hub', 'models--org--stories', 'blobs');
    mkdirSync(blobs, { recursive: true });
    const half = Math.floor(full.length / 2);
    writeFileSync(join(blobs, `${sha256(full)}.incomplete`), full.subarray(0, half));
    const start = hub.requests.length;
    const dir = await resolveIn(home, 'org/stories');
    expect(readFileSync(join(dir, 'model.safetensors')).equals(full)).toBe(true);
    expect(hub.requests.slice(start)).toContain(
      `/org/stories/resolve/${COMMIT}/model.safetensors bytes=${half}-${full.length - 1}`,
    );
    expect(existsSync(join(blobs, `${sha256(full)}.incomplete`))).toBe(false);
  });

  test('errors: unknown repository or revision, 401 without HF_TOKEN, offline and not cached', async () => {
    const home = makeTempDir('hf-home');
    expect(await errorOf(resolveIn(home, 'org/missing'))).toContain(
      `org/missing@main: not a local folder, and no such model repository or revision on ${hub.url}`,
    );
    expect(await errorOf(resolveIn(home, 'org/stories@nope'))).toContain(
      'no such model repository or revision',
    );
    expect(await errorOf(resolveIn(home, 'org/private'))).toContain(
      'org/private@main: the Hub refused access (HTTP 401) (fix: set HF_TOKEN to an access token',
    );
    expect(await errorOf(resolveIn(home, 'org/private', { HF_TOKEN: 'hf_wrong' }))).toContain(
      'with the HF_TOKEN given',
    );
    const dir = await resolveIn(home, 'org/private', { HF_TOKEN: 'hf_secret' });
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
    expect(await errorOf(resolveIn(home, 'org/stories', { HF_HUB_OFFLINE: '1' }))).toContain(
      'org/stories@main is not in the Hugging Face cache',
    );
  });

  test('base_model: org/name in a task file, and --model org/name on the command line', async () => {
    const home = makeTempDir('hf-home');
    const taskDir = makeTempDir('hf-task');
    const task = join(taskDir, 'task.yaml');
    writeFileSync(task, 'task: code_completion\ndataset: github_code\nbase_model: org/stories@v1\n');
    const config = await loadTaskConfig(task, { env: envWith(home), log: () => {} });
    expect(config.base_model).toBe(join(home, 'hub', 'models--org--stories', 'snapshots', TAG_COMMIT));

    const ok = await runCliAsync(
      ['tokenize', '--model', 'org/stories', '--text', 'Once upon a time'],
      envWith(home),
    );
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe('[1,403,407,261,378]\n');
    const bad = await runCliAsync(['tokenize', '--model', 'org/missing', '--text', 'x'], envWith(home));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(
      'mft: --model: org/missing@main: not a local folder, and no such model repository',
    );
  });
});
