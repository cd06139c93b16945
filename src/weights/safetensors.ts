/**
 * safetensors reader (https://github.com/huggingface/safetensors, "Format"); the writer is safetensors-writer.ts.
 *
 *   [8 bytes: header length N, little-endian u64]
 *   [N bytes: JSON header, padded with spaces]  {"__metadata__": {str: str},
 *                                                "name": {"dtype": "F32", "shape": [2, 3],
 *                                                         "data_offsets": [begin, end]}, ...}
 *   [data section: tensors back to back, offsets relative to its start, little-endian]
 *
 * Files come from the internet, so the header is validated before any tensor is allocated:
 * header length sane and inside the file, known dtypes, offsets inside the data section,
 * `end - begin == numel * itemsize`, and the ranges tile the data section with no gap or
 * overlap. Tensors are read one at a time with positioned reads (a Node buffer stops at 4 GiB,
 * so a shard is never read whole). The writer lives in safetensors-writer.ts.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { fail } from '../util/index.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8' | 'BOOL';

/** One tensor's values; F16 / BF16 are raw 16-bit words, BOOL is one byte per value. */
export interface TensorData {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;
}

/** A tensor as listed in the header. */
export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  byteLength: number;
}

/** Bytes per element of each supported dtype. */
export const DTYPE_ITEMSIZE: Readonly<Record<SafetensorsDtype, number>> = Object.freeze({
  F32: 4,
  F16: 2,
  BF16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  BOOL: 1,
});

/** Refuse headers larger than this before reading them (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Node's readSync / writeSync take at most 2^31 - 1 bytes per call. */
export const IO_CHUNK = 1 << 30;

if (endianness() !== 'LE') {
  throw new Error('safetensors.ts assumes a little-endian host (safetensors data is little-endian)');
}

interface Entry extends TensorInfo {
  begin: number;
  end: number;
}

const FIX_CORRUPT = 'the file is corrupt or truncated: download or write it again';

/** Number of elements of `shape`, or null when it is not a list of non-negative safe integers. */
export function numelOf(shape: unknown): number | null {
  if (!Array.isArray(shape)) return null;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return null;
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

/** An open, validated safetensors file; tensors are read one at a time. */
export class SafetensorsFile {
  readonly path: string;
  /** The `__metadata__` string map (empty when absent). */
  readonly metadata: Record<string, string>;
  private fd: number | null;
  private readonly entries: Map<string, Entry>;
  private readonly dataStart: number;

  private constructor(
    path: string,
    fd: number,
    metadata: Record<string, string>,
    entries: Map<string, Entry>,
    dataStart: number,
  ) {
    this.path = path;
    this.fd = fd;
    this.metadata = metadata;
    this.entries = entries;
    this.dataStart = dataStart;
  }

  /**
   * Open and validate a safetensors file (header only; no tensor is read yet).
   * @param path the `.safetensors` file
   * @example const f = SafetensorsFile.open('model.safetensors'); const w = f.read('model.norm.weight'); f.close();
   */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      fail(path, `cannot open safetensors file: ${(e as Error).message}`, 'check the path');
    }
    try {
      const { metadata, entries, dataStart } = parseHeader(path, fd);
      return new SafetensorsFile(path, fd, metadata, entries, dataStart);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether the file holds tensor `name`. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** dtype, shape and byte length of tensor `name`. */
  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape], byteLength: e.byteLength };
  }

  /**
   * Read tensor `name` into a new typed array.
   * @param opts shared: back the array by a SharedArrayBuffer (for worker threads)
   */
  read(name: string, opts: { shared?: boolean } = {}): TensorData {
    const e = this.entry(name);
    if (this.fd === null) throw new Error(`SafetensorsFile.read: ${this.path} is closed`);
    const buffer = opts.shared ? new SharedArrayBuffer(e.byteLength) : new ArrayBuffer(e.byteLength);
    const bytes = new Uint8Array(buffer);
    let done = 0;
    while (done < e.byteLength) {
      const want = Math.min(IO_CHUNK, e.byteLength - done);
      const got = readSync(this.fd, bytes, done, want, this.dataStart + e.begin + done);
      if (got === 0)
        fail(this.path, `tensor "${name}": unexpected end of file while reading its data`, FIX_CORRUPT);
      done += got;
    }
    return { dtype: e.dtype, shape: [...e.shape], data: typedView(e.dtype, buffer) };
  }

  /** Release the file descriptor. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e)
      fail(this.path, `no tensor named "${name}"`, 'check the tensor name against the model architecture');
    return e;
  }
}

/** A typed array of the right kind over `buffer`. */
function typedView(dtype: SafetensorsDtype, buffer: ArrayBufferLike): TensorData['data'] {
  switch (dtype) {
    case 'F32':
      return new Float32Array(buffer);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buffer);
    case 'I32':
      return new Int32Array(buffer);
    case 'I64':
      return new BigInt64Array(buffer);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer);
  }
}

function readExact(path: string, fd: number, length: number, position: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, Math.min(IO_CHUNK, length - done), position + done);
    if (got === 0) fail(path, 'unexpected end of file while reading the header', FIX_CORRUPT);
    done += got;
  }
  return out;
}

/** Read and validate the header; throws MftError naming the file (and the tensor when there is one). */
function parseHeader(
  path: string,
  fd: number,
): { metadata: Record<string, string>; entries: Map<string, Entry>; dataStart: number } {
  const size = fstatSync(fd).size;
  if (size < 8)
    fail(path, `not a safetensors file: ${size} bytes, shorter than the 8-byte header length`, FIX_CORRUPT);
  const lenBytes = readExact(path, fd, 8, 0);
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    fail(path, `header length ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`, FIX_CORRUPT);
  }
  const n = Number(headerLen);
  if (8 + n > size) {
    fail(path, `header length ${n} bytes runs past the end of the file (${size} bytes)`, FIX_CORRUPT);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readExact(path, fd, n, 8));
  } catch (e) {
    if ((e as Error).name === 'MftError') throw e;
    fail(path, 'header is not valid UTF-8', FIX_CORRUPT);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(path, `header is not valid JSON: ${(e as Error).message}`, FIX_CORRUPT);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    fail(path, 'header is not a JSON object', FIX_CORRUPT);
  }
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, Entry>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        fail(path, '__metadata__ must be an object of strings', FIX_CORRUPT);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string')
          fail(path, `__metadata__.${k}: expected a string, got ${JSON.stringify(v)}`, FIX_CORRUPT);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${path}: tensor "${name}"`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      fail(where, 'header entry is not an object', FIX_CORRUPT);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_ITEMSIZE, dtype)) {
      fail(
        where,
        `unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_ITEMSIZE).join(', ')})`,
        FIX_CORRUPT,
      );
    }
    const numel = numelOf(shape);
    if (numel === null)
      fail(where, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, FIX_CORRUPT);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      fail(
        where,
        `data_offsets ${JSON.stringify(offsets)} must be [begin, end] with 0 <= begin <= end`,
        FIX_CORRUPT,
      );
    }
    const [begin, end] = offsets as [number, number];
    const itemsize = DTYPE_ITEMSIZE[dtype as SafetensorsDtype];
    if (end - begin !== numel * itemsize) {
      fail(
        where,
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${numel * itemsize}`,
        FIX_CORRUPT,
      );
    }
    if (end > dataLen) {
      fail(
        where,
        `data_offsets [${begin}, ${end}] run past the end of the data section (${dataLen} bytes)`,
        FIX_CORRUPT,
      );
    }
    entries.set(name, {
      dtype: dtype as SafetensorsDtype,
      shape: [...(shape as number[])],
      byteLength: end - begin,
      begin,
      end,
    });
  }
  checkTiling(path, entries, dataLen);
  return { metadata, entries, dataStart };
}

/** The ranges must cover [0, dataLen) back to back: no gap, no overlap, nothing after the last one. */
function checkTiling(path: string, entries: Map<string, Entry>, dataLen: number): void {
  const sorted = [...entries].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let pos = 0;
  let prevName: string | null = null;
  for (const [name, e] of sorted) {
    if (e.begin < pos) {
      fail(
        `${path}: tensor "${name}"`,
        `data_offsets [${e.begin}, ${e.end}] overlap tensor "${prevName}" (which ends at ${pos})`,
        FIX_CORRUPT,
      );
    }
    if (e.begin > pos) {
      fail(
        `${path}: tensor "${name}"`,
        `data_offsets [${e.begin}, ${e.end}] leave a gap of ${e.begin - pos} bytes after offset ${pos}`,
        FIX_CORRUPT,
      );
    }
    pos = e.end;
    if (e.end > e.begin) prevName = name;
  }
  if (pos !== dataLen) {
    fail(
      path,
      `the tensors end at data offset ${pos} but the data section has ${dataLen} bytes`,
      FIX_CORRUPT,
    );
  }
}
