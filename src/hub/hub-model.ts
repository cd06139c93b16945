/**
 * Models from the Hugging Face Hub: `org/name[@revision]` as `base_model` or `--model` resolves to a
 * snapshot folder of the Hugging Face cache, the layout huggingface_hub and transformers share:
 *
 *   $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
 *     models--org--name/refs/<revision>          the commit a branch or tag pointed to
 *     models--org--name/blobs/<etag>             file contents (git oid, or the LFS sha256)
 *     models--org--name/snapshots/<commit>/<f>   relative symlinks to ../../blobs/<etag>
 *
 * Files not in the cache are downloaded with @huggingface/hub (only those mft reads), each into
 * `blobs/<etag>.incomplete`, resumed from its size by a Range request after an interruption, and
 * renamed when complete. `HF_TOKEN` authorizes; `HF_HUB_OFFLINE=1` never touches the network;
 * `HF_ENDPOINT` replaces https://huggingface.co.
 */
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { downloadFile, HubApiError, type ListFileEntry, listFiles, modelInfo } from '@huggingface/hub';
import cliProgress from 'cli-progress';
import { fail, MftError, writeFileAtomic } from '../util/index.js';

/** `org/name` or `org/name@revision`: letters, digits, `-`, `_`, `.`; a revision may hold `/`. */
const HUB_ID_RE = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@([\w./-]+))?$/;
const COMMIT_RE = /^[0-9a-f]{40}$/;

/** The files of a model repository mft reads (weights come from model.safetensors or the index). */
const WANTED = new Set([
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'chat_template.jinja',
  'chat_template.json',
  'model.safetensors',
  'model.safetensors.index.json',
  'LICENSE',
  'LICENSE.txt',
  'LICENSE.md',
  'NOTICE',
  'USE_POLICY.md',
]);

export interface HubRef {
  repo: string;
  revision: string;
}

/** The Hub id in `value`, or null when it is not one (`./x`, `/x`, `a/b/c`, a bare name). */
export function parseHubRef(value: string): HubRef | null {
  const m = HUB_ID_RE.exec(value);
  if (!m || m[1] === '.' || m[1] === '..' || m[2] === '.' || m[2] === '..') return null;
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? 'main' };
}

/** The Hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'), 'hub');
}

export interface ResolveHubOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Progress lines (stderr in the CLI); a bar is drawn instead when stderr is a TTY. */
  log?: (line: string) => void;
  /** What named the model, for error messages: `base_model` or `--model`. */
  source?: string;
}

const truthy = (v: string | undefined): boolean => v !== undefined && /^(1|true|yes|on)$/i.test(v);

/**
 * Where the cache keeps `ref` (`models--org--name/`), and its snapshot folder when the cache knows
 * the commit (the revision is one, or refs/<revision> names one) and holds every file.
 */
function cachedSnapshot(
  ref: HubRef,
  env: Readonly<Record<string, string | undefined>>,
): { storage: string; dir: string | null } {
  const storage = join(hubCacheDir(env), `models--${ref.repo.replace('/', '--')}`);
  const refFile = join(storage, 'refs', ref.revision);
  const commit = COMMIT_RE.test(ref.revision)
    ? ref.revision
    : existsSync(refFile)
      ? readFileSync(refFile, 'utf8').trim()
      : null;
  const dir = commit ? join(storage, 'snapshots', commit) : null;
  return { storage, dir: dir !== null && isCompleteSnapshot(dir) ? dir : null };
}

/** The complete cached snapshot of `ref`, or null (no network). */
export function cachedHubSnapshot(
  ref: HubRef,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | null {
  return cachedSnapshot(ref, env).dir;
}

/** Whether HF_HUB_OFFLINE forbids the network. */
export function hubOffline(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return truthy(env.HF_HUB_OFFLINE);
}

/** The snapshot folder of `ref`, downloading what is missing. */
export async function resolveHubModel(ref: HubRef, opts: ResolveHubOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  const where = opts.source ?? ref.repo;
  const { storage, dir: cachedDir } = cachedSnapshot(ref, env);
  const shown = `${ref.repo}@${ref.revision}`;

  if (truthy(env.HF_HUB_OFFLINE)) {
    if (cachedDir !== null) return cachedDir;
    fail(
      where,
      `${shown} is not in the Hugging Face cache (${storage}) and HF_HUB_OFFLINE=1 forbids downloading it`,
      'unset HF_HUB_OFFLINE to download it once, or point at a local model folder',
    );
  }
  const hubUrl = (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const accessToken = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  const common = {
    repo: { type: 'model' as const, name: ref.repo },
    hubUrl,
    ...(accessToken ? { accessToken } : {}),
  };

  let commit: string;
  let entries: ListFileEntry[];
  try {
    const info = await modelInfo({
      name: ref.repo,
      revision: ref.revision,
      hubUrl,
      additionalFields: ['sha'],
      ...(accessToken ? { accessToken } : {}),
    });
    commit = (info as { sha?: string }).sha ?? '';
    if (!COMMIT_RE.test(commit)) throw new Error(`the Hub gave no commit for ${shown}`);
    entries = [];
    for await (const e of listFiles({ ...common, revision: commit, recursive: true })) entries.push(e);
  } catch (e) {
    if (cachedDir !== null && !(e instanceof HubApiError) && !(e instanceof MftError)) {
      // No network: huggingface_hub's rule, the cached snapshot of this revision is used.
      log(`warning: cannot reach ${hubUrl} (${(e as Error).message}); using the cached ${shown}`);
      return cachedDir;
    }
    throw hubError(e, shown, where, hubUrl, accessToken !== undefined);
  }
  const snapshot = join(storage, 'snapshots', commit);
  const byPath = new Map(entries.filter((e) => e.type === 'file').map((e) => [e.path, e] as const));
  if (!byPath.has('config.json')) {
    fail(
      where,
      `${shown} has no config.json: not a Transformers model repository`,
      'name a model repository (org/name)',
    );
  }
  const fetchOne = (path: string): Promise<void> =>
    fetchFile({
      ...common,
      commit,
      storage,
      snapshot,
      entry: byPath.get(path) as ListFileEntry,
      log,
      shown,
      where,
    });

  // Metadata first: the index names the weight shards to fetch.
  for (const path of [...WANTED].filter((p) => byPath.has(p) && p !== 'model.safetensors'))
    await fetchOne(path);
  const weights: string[] = [];
  if (byPath.has('model.safetensors.index.json')) {
    const index = JSON.parse(readFileSync(join(snapshot, 'model.safetensors.index.json'), 'utf8')) as {
      weight_map?: Record<string, string>;
    };
    for (const f of new Set(Object.values(index.weight_map ?? {}))) {
      if (!byPath.has(f))
        fail(
          where,
          `${shown}: model.safetensors.index.json names ${f}, which the repository lacks`,
          'pick another revision',
        );
      weights.push(f);
    }
  } else if (byPath.has('model.safetensors')) {
    weights.push('model.safetensors');
  } else {
    fail(
      where,
      `${shown} has no safetensors weights (model.safetensors or an index)`,
      'pick a repository or revision with safetensors weights',
    );
  }
  for (const f of weights) await fetchOne(f);
  if (!COMMIT_RE.test(ref.revision)) {
    const refFile = join(storage, 'refs', ref.revision);
    mkdirSync(dirname(refFile), { recursive: true });
    writeFileAtomic(refFile, commit);
  }
  return snapshot;
}

/** A snapshot holds config.json and its weights (model.safetensors, or every shard of the index). */
function isCompleteSnapshot(dir: string): boolean {
  if (!existsSync(join(dir, 'config.json'))) return false;
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    try {
      const map =
        (JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      return Object.values(map).every((f) => existsSync(join(dir, f)));
    } catch {
      return false;
    }
  }
  return existsSync(join(dir, 'model.safetensors'));
}

interface FetchFile {
  repo: { type: 'model'; name: string };
  hubUrl: string;
  accessToken?: string;
  commit: string;
  storage: string;
  snapshot: string;
  entry: ListFileEntry;
  log: (line: string) => void;
  shown: string;
  where: string;
}

/** Download one file into blobs/ (resuming a .incomplete file) and link it into the snapshot. */
async function fetchFile(f: FetchFile): Promise<void> {
  const pointer = join(f.snapshot, f.entry.path);
  if (existsSync(pointer)) return;
  const etag = f.entry.lfs?.oid ?? f.entry.oid;
  if (!etag)
    fail(f.where, `${f.shown} ${f.entry.path}: the Hub listed no hash for it`, 'pick another revision');
  const blob = join(f.storage, 'blobs', etag);
  mkdirSync(dirname(blob), { recursive: true });
  if (!existsSync(blob)) {
    const size = f.entry.lfs?.size ?? f.entry.size;
    const incomplete = `${blob}.incomplete`;
    const have = existsSync(incomplete) ? statSync(incomplete).size : 0;
    const label = `${f.shown} ${f.entry.path}`;
    if (have > size) unlinkSync(incomplete);
    const start = have > size ? 0 : have;
    if (start < size) {
      f.log(
        `downloading ${label} (${formatBytes(size)}${start > 0 ? `, resuming at ${formatBytes(start)}` : ''})`,
      );
      try {
        const file = await downloadFile({
          repo: f.repo,
          path: f.entry.path,
          revision: f.commit,
          hubUrl: f.hubUrl,
          xet: false,
          ...(f.accessToken ? { accessToken: f.accessToken } : {}),
        });
        if (!file) fail(f.where, `${label}: the Hub has no such file`, 'pick another revision');
        const bar = downloadBar(label, size, start);
        const body = Readable.fromWeb(file.slice(start).stream() as import('node:stream/web').ReadableStream);
        let done = start;
        body.on('data', (chunk: Buffer) => {
          done += chunk.length;
          bar.update(done);
        });
        try {
          await pipeline(body, createWriteStream(incomplete, { flags: start > 0 ? 'a' : 'w' }));
        } finally {
          bar.stop();
        }
      } catch (e) {
        if (e instanceof MftError) throw e;
        throw hubError(e, f.shown, f.where, f.hubUrl, f.accessToken !== undefined, incomplete);
      }
    }
    const got = statSync(incomplete).size;
    if (got !== size) {
      fail(
        f.where,
        `${label}: downloaded ${got} bytes, the Hub lists ${size}`,
        'run the command again to resume the download',
      );
    }
    renameSync(incomplete, blob);
  }
  mkdirSync(dirname(pointer), { recursive: true });
  symlinkSync(relative(dirname(pointer), blob), pointer);
}

function downloadBar(label: string, total: number, start: number): { update(n: number): void; stop(): void } {
  if (!process.stderr.isTTY || total === 0) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} |{bar}| {percentage}% | {value}/{total} bytes`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, start);
  let last = 0;
  return {
    update(n) {
      const now = Date.now();
      if (now - last > 100 || n === total) {
        bar.update(n);
        last = now;
      }
    },
    stop: () => bar.stop(),
  };
}

function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${n} bytes`;
}

/** A user-facing error for a failed Hub request (not found, 401/403, no network). */
function hubError(
  e: unknown,
  shown: string,
  where: string,
  hubUrl: string,
  hasToken: boolean,
  incomplete?: string,
): Error {
  if (e instanceof MftError) return e;
  const status = e instanceof HubApiError ? e.statusCode : undefined;
  if (status === 401 || status === 403) {
    return new MftError({
      where,
      message: `${shown}: the Hub refused access (HTTP ${status})${hasToken ? ' with the HF_TOKEN given' : ''}`,
      fix: hasToken
        ? 'check that HF_TOKEN can read this repository; for a gated model accept its licence on the model page'
        : 'set HF_TOKEN to an access token (private or gated model; accept the licence on the model page)',
    });
  }
  if (status === 404) {
    return new MftError({
      where,
      message: `${shown}: not a local folder, and no such model repository or revision on ${hubUrl}`,
      fix: hasToken
        ? 'check the name and revision'
        : 'check the name and revision; a private model needs HF_TOKEN',
    });
  }
  return new MftError({
    where,
    message: `${shown}: cannot download from ${hubUrl}: ${(e as Error)?.message ?? String(e)}${status ? ` (HTTP ${status})` : ''}`,
    fix: incomplete
      ? 'check the network and run the command again: the download resumes where it stopped'
      : 'check the network, or set HF_HUB_OFFLINE=1 to use the cache only',
  });
}
