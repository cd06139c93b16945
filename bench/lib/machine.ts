/**
 * What a result was measured on: the machine (CPU model, cores, memory, load) and the versions of
 * Node, tfjs and mft (with the git commit when the tree is a checkout).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  /** 1-minute load average when the benchmark started and ended (the machine may be shared). */
  loadStart: number;
  loadEnd: number | null;
}

export interface Versions {
  node: string;
  tfjs: string;
  tfjsBackendWasm: string | null;
  tfjsNode: string | null;
  mft: string;
  /** `git rev-parse --short HEAD` plus `+dirty` when the tree has changes; null outside a checkout. */
  commit: string | null;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A path inside the repository as a relative path (results stay comparable between checkouts). */
export function repoRelative(path: string): string {
  const rel = relative(ROOT, path);
  return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

/** The machine, with the current load average. */
export function machine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    platform: `${process.platform}-${process.arch}`,
    loadStart: Number(loadavg()[0]!.toFixed(2)),
    loadEnd: null,
  };
}

/** The 1-minute load average now. */
export function loadNow(): number {
  return Number(loadavg()[0]!.toFixed(2));
}

function packageVersion(name: string): string | null {
  try {
    const path = name === '.' ? `${ROOT}package.json` : `${ROOT}node_modules/${name}/package.json`;
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}

function gitCommit(): string | null {
  try {
    const opts = {
      cwd: ROOT,
      encoding: 'utf8' as const,
      stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
    };
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}

/** Versions of everything that decides the figures. */
export function versions(): Versions {
  return {
    node: process.version,
    tfjs: packageVersion('@tensorflow/tfjs') ?? 'unknown',
    tfjsBackendWasm: packageVersion('@tensorflow/tfjs-backend-wasm'),
    tfjsNode: packageVersion('@tensorflow/tfjs-node-gpu') ?? packageVersion('@tensorflow/tfjs-node'),
    mft: packageVersion('.') ?? 'unknown',
    commit: gitCommit(),
  };
}
