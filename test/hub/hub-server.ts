/**
 * A loopback stand-in for the Hugging Face Hub: serves model folders in the Hub's URL layout
 * (the model-info and tree APIs, and /resolve/ with Range requests), for HF_ENDPOINT in tests.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface HubRepo {
  /** Folder whose files the repository holds. */
  dir: string;
  /** Revisions (branches, tags) -> commit; `main` is required. */
  revisions: Record<string, string>;
  /** Extra files (path -> content) besides the folder's. */
  extra?: Record<string, string>;
  /** When set, requests need `Authorization: Bearer <token>`. */
  token?: string;
}

export interface HubServer {
  url: string;
  /** Every request path (with its Range header, if any), in order. */
  requests: string[];
  close(): Promise<void>;
}

const isLfs = (path: string): boolean => path.endsWith('.safetensors') || path.endsWith('.bin');

function gitOid(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

export async function startHubServer(repos: Record<string, HubRepo>): Promise<HubServer> {
  const files = new Map<string, Map<string, Buffer>>();
  for (const [name, repo] of Object.entries(repos)) {
    const m = new Map<string, Buffer>();
    for (const f of readdirSync(repo.dir)) m.set(f, readFileSync(join(repo.dir, f)));
    for (const [p, text] of Object.entries(repo.extra ?? {})) m.set(p, Buffer.from(text));
    files.set(name, m);
  }
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const range = req.headers.range;
    requests.push(range ? `${url.pathname} ${range}` : url.pathname);
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const name = decodeURIComponent((api?.[1] ?? resolve?.[1]) as string);
    const repo = repos[name];
    if (!repo || (!api && !resolve)) {
      json(404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
      return;
    }
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      json(401, { error: 'Invalid credentials in Authorization header' });
      return;
    }
    const rev = decodeURIComponent((api?.[3] ?? resolve?.[2]) as string);
    const commit = repo.revisions[rev] ?? (Object.values(repo.revisions).includes(rev) ? rev : undefined);
    if (!commit) {
      json(404, { error: `Invalid rev id: ${rev}` }, { 'X-Error-Code': 'RevisionNotFound' });
      return;
    }
    const repoFiles = files.get(name) as Map<string, Buffer>;
    if (api?.[2] === 'revision') {
      json(200, {
        _id: 'x',
        id: name,
        sha: commit,
        private: !!repo.token,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: '2026-01-01T00:00:00.000Z',
      });
      return;
    }
    if (api) {
      json(
        200,
        [...repoFiles].map(([path, bytes]) => ({
          type: 'file',
          path,
          size: bytes.length,
          oid: gitOid(bytes),
          ...(isLfs(path)
            ? {
                lfs: {
                  oid: createHash('sha256').update(bytes).digest('hex'),
                  size: bytes.length,
                  pointerSize: 134,
                },
              }
            : {}),
        })),
      );
      return;
    }
    const bytes = repoFiles.get(decodeURIComponent(resolve?.[3] as string));
    if (!bytes) {
      json(404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      return;
    }
    const etag = `"${isLfs(resolve?.[3] as string) ? createHash('sha256').update(bytes).digest('hex') : gitOid(bytes)}"`;
    const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (m) {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), bytes.length - 1) : bytes.length - 1;
      res.writeHead(206, {
        'Content-Range': `bytes ${start}-${end}/${bytes.length}`,
        'Content-Length': end - start + 1,
        ETag: etag,
        'X-Repo-Commit': commit,
      });
      res.end(bytes.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'Content-Length': bytes.length, ETag: etag, 'X-Repo-Commit': commit });
    res.end(bytes);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}
