/**
 * The on-disk cache of tokenized, packed datasets: `<cache_dir>/data/<key>.mftdata`.
 *
 * The key is a sha256 over everything the result depends on: each source file (its content, or
 * size + mtime for files over 64 MiB), the recipe, the task's data settings (sequence_len, packing,
 * truncation, split, fields, fim_rate, seed) and the tokenizer: the content of every tokenizer file
 * in its folder plus the special ids it reports. Editing any of them gives a new key, so a cache
 * can never be reused after, say, a tokenizer change.
 *
 * File layout (little-endian): "MFTDATA1", u32 header length, the header JSON padded with spaces
 * to a multiple of 8 bytes, then the arrays of the header's `arrays` list in order (u8, u16, i32
 * or f64, each padded to 8 bytes). The file is written to a temporary name, fsynced and
 * renamed, so a reader sees a whole file or none.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type MftTokenizer, TOKENIZER_FILES } from '../tokenizer/index.js';
import { fsyncPath, writeFileAtomic } from '../util/index.js';
import type { SplitLayout } from './packed-split.js';
import type { SourceFile } from './sources/index.js';
import type { TokenStore } from './token-store.js';
import type { DataStats } from './types.js';

/** Bump when the meaning or layout of cached data changes. */
export const CACHE_VERSION = 2;

const MAGIC = 'MFTDATA1';
const CONTENT_HASH_LIMIT = 64 * 2 ** 20;
// Bytes per read call (one call cannot move more than 2 GiB).
const IO_CHUNK = 2 ** 30;

/** The files hashed into a tokenizer's identity: its own, and config.json (it may name BOS/EOS). */
const TOKENIZER_IDENTITY_FILES = [...TOKENIZER_FILES, 'config.json'];

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Identity of a source file for the key: its content hash, or size and mtime when it is large. */
export function sourceIdentity(file: SourceFile): Record<string, string | number> {
  const st = statSync(file.path);
  if (st.size <= CONTENT_HASH_LIMIT) return { path: file.path, sha256: sha256File(file.path) };
  return { path: file.path, size: st.size, mtimeMs: st.mtimeMs };
}

/** Identity of a tokenizer: the content of its files and the special ids it reports. */
export function tokenizerIdentity(tok: MftTokenizer): Record<string, unknown> {
  const files: Record<string, string> = {};
  for (const name of TOKENIZER_IDENTITY_FILES) {
    const p = join(tok.dir, name);
    if (existsSync(p)) files[name] = sha256File(p);
  }
  return {
    files,
    vocabSize: tok.vocabSize,
    bosId: tok.bosId,
    eosId: tok.eosId,
    padId: tok.padId,
    addsBos: tok.addsBos,
    addsEos: tok.addsEos,
    chatTemplate: tok.chatTemplate,
  };
}

/** sha256 (hex) of a JSON-serialisable description of everything a dataset depends on. */
export function cacheKey(parts: Record<string, unknown>): string {
  return createHash('sha256')
    .update(JSON.stringify({ version: CACHE_VERSION, ...parts }))
    .digest('hex');
}

type CachedArray = Uint8Array | Uint16Array | Int32Array | Float64Array;

// The element types a cache file can hold, by the name its header gives them.
const ARRAY_TYPES = { u8: Uint8Array, u16: Uint16Array, i32: Int32Array, f64: Float64Array } as const;
type ArrayTypeName = keyof typeof ARRAY_TYPES;

function arrayTypeName(a: CachedArray): ArrayTypeName {
  return (Object.keys(ARRAY_TYPES) as ArrayTypeName[]).find((k) => a instanceof ARRAY_TYPES[k])!;
}

/** A cache file's content: a JSON header and named typed arrays. */
export interface CacheContent {
  header: Record<string, unknown>;
  arrays: Record<string, CachedArray>;
}

function pad8(n: number): number {
  return (8 - (n % 8)) % 8;
}

/** Write a cache file atomically (temporary file, fsync, rename, fsync of the folder). */
export function writeCacheFile(path: string, content: CacheContent, dir: string): void {
  const names = Object.keys(content.arrays);
  const header = {
    ...content.header,
    arrays: names.map((name) => {
      const a = content.arrays[name]!;
      return { name, type: arrayTypeName(a), length: a.length };
    }),
  };
  let json = JSON.stringify(header);
  json += ' '.repeat(pad8(MAGIC.length + 4 + Buffer.byteLength(json)));
  const head = Buffer.alloc(MAGIC.length + 4);
  head.write(MAGIC, 0, 'ascii');
  head.writeUInt32LE(Buffer.byteLength(json), MAGIC.length);

  const parts: Uint8Array[] = [head, Buffer.from(json, 'utf8')];
  for (const name of names) {
    const a = content.arrays[name]!;
    parts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(pad8(a.byteLength)));
  }
  writeFileAtomic(path, parts);
  fsyncPath(dir);
}

/** Read exactly `into.length` bytes at `position`; false at end of file. */
function readFully(fd: number, into: Uint8Array, position: number): boolean {
  let off = 0;
  while (off < into.length) {
    const n = readSync(fd, into, off, Math.min(IO_CHUNK, into.length - off), position + off);
    if (n === 0) return false;
    off += n;
  }
  return true;
}

/**
 * Read a cache file array by array, straight into typed arrays (no whole-file buffer, so files
 * over 2 GiB read too); null when it is missing, truncated or not a cache file.
 */
export function readCacheFile(path: string): CacheContent | null {
  if (!existsSync(path)) return null;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(MAGIC.length + 4);
    if (!readFully(fd, head, 0) || head.toString('ascii', 0, MAGIC.length) !== MAGIC) return null;
    const headerLen = head.readUInt32LE(MAGIC.length);
    const json = Buffer.alloc(headerLen);
    if (!readFully(fd, json, head.length)) return null;
    const header = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    let at = head.length + headerLen;
    const arrays: Record<string, CachedArray> = {};
    for (const spec of header.arrays as { name: string; type: ArrayTypeName; length: number }[]) {
      if (!Object.hasOwn(ARRAY_TYPES, spec.type)) return null;
      const Type = ARRAY_TYPES[spec.type];
      const a = new Type(spec.length);
      if (!readFully(fd, new Uint8Array(a.buffer), at)) return null;
      arrays[spec.name] = a;
      at += a.byteLength + pad8(a.byteLength);
    }
    return { header, arrays };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** What a cached dataset holds: the parts a `PackedDataset` is assembled from. */
export interface DatasetParts {
  /** The cache key it was built under. */
  readonly key: string;
  readonly seqLen: number;
  readonly padId: number;
  readonly store: TokenStore;
  readonly train: SplitLayout;
  readonly validation: SplitLayout | null;
  readonly stats: DataStats;
  /** Store indices of the first training samples in reading order, for inspection. */
  readonly exampleSamples: Int32Array;
}

/** A dataset as cache file content. */
export function encodeDataset(parts: DatasetParts): CacheContent {
  const { key, padId, seqLen, stats, store, train, validation } = parts;
  const arrays: CacheContent['arrays'] = {
    ids: store.ids,
    labels: store.labels,
    offsets: store.offsets,
    trainSamples: train.samples,
    trainRowStarts: train.rowStarts,
    exampleSamples: parts.exampleSamples,
  };
  if (validation) {
    arrays.valSamples = validation.samples;
    arrays.valRowStarts = validation.rowStarts;
  }
  return { header: { key, padId, seqLen, stats }, arrays };
}

/** The dataset of cache file content; null when it was built under another key or lacks an array. */
export function decodeDataset(c: CacheContent, key: string): DatasetParts | null {
  const h = c.header as { key?: string; padId: number; seqLen: number; stats: DataStats };
  const a = c.arrays;
  const i32 = (x: unknown) => (x instanceof Int32Array ? x : null);
  const ids = a.ids instanceof Uint16Array ? a.ids : i32(a.ids);
  const labels = a.labels instanceof Uint8Array ? a.labels : i32(a.labels);
  const offsets = a.offsets instanceof Float64Array ? a.offsets : null;
  const layout = (samples: unknown, rowStarts: unknown): SplitLayout | null => {
    const [s, r] = [i32(samples), i32(rowStarts)];
    return s && r ? { samples: s, rowStarts: r } : null;
  };
  const train = layout(a.trainSamples, a.trainRowStarts);
  const exampleSamples = i32(a.exampleSamples);
  if (h.key !== key || !ids || !labels || !offsets || !train || !exampleSamples) return null;
  return {
    key,
    seqLen: h.seqLen,
    padId: h.padId,
    store: { ids, labels, offsets },
    train,
    validation: layout(a.valSamples, a.valRowStarts),
    stats: h.stats,
    exampleSamples,
  };
}
