/**
 * A GGUF v3 file writer (the format of llama.cpp, ggml's gguf.md): header, metadata key/values,
 * tensor infos, then the tensor data, each tensor aligned to `general.alignment` (32 bytes).
 *
 * Tensors are written one at a time (the caller hands each tensor's bytes in declaration order), so
 * a model is never in memory at once. The file is written under a temporary name and renamed when
 * complete.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fail, fsyncPath, tempPathFor } from '../util/index.js';

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** ggml tensor types this writer emits (ggml.h `enum ggml_type`). */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlType = (typeof GGML_TYPE)[keyof typeof GGML_TYPE];

/** GGUF metadata value types (gguf.md `gguf_metadata_value_type`). */
const VT = { U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;

/** A metadata value, typed as GGUF stores it. */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'f32[]'; value: ArrayLike<number> }
  | { type: 'i32[]'; value: ArrayLike<number> };

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] is the innermost (contiguous) dimension, i.e. an HF [out, in] weight is [in, out]. */
  ne: readonly number[];
  type: GgmlType;
}

/** Bytes of a tensor's data: Q8_0 stores blocks of 32 values as an f16 scale + 32 int8 (34 bytes). */
export function ggmlBytes(type: GgmlType, ne: readonly number[]): number {
  const n = ne.reduce((a, b) => a * b, 1);
  if (type === GGML_TYPE.F32) return n * 4;
  if (type === GGML_TYPE.F16) return n * 2;
  return (n / 32) * 34;
}

/** Grows a byte buffer for the header. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  /** Append `n` bytes, which `write` puts into the buffer at offset `at`. */
  private append(n: number, write: (buf: Buffer, at: number) => void): void {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    write(this.buf, this.length);
    this.length += n;
  }
  u8(v: number): void {
    this.append(1, (buf, at) => {
      buf[at] = v;
    });
  }
  u32(v: number): void {
    this.append(4, (buf, at) => buf.writeUInt32LE(v, at));
  }
  i32(v: number): void {
    this.append(4, (buf, at) => buf.writeInt32LE(v, at));
  }
  u64(v: number): void {
    this.append(8, (buf, at) => buf.writeBigUInt64LE(BigInt(v), at));
  }
  f32(v: number): void {
    this.append(4, (buf, at) => buf.writeFloatLE(v, at));
  }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.append(bytes.length, (buf, at) => bytes.copy(buf, at));
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.append(n, (buf, at) => buf.fill(0, at, at + n));
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** The value type of each scalar. */
const SCALAR_TYPE = { u32: VT.U32, i32: VT.I32, f32: VT.F32 } as const;

function writeValue(sink: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
    case 'i32':
    case 'f32':
      sink.u32(SCALAR_TYPE[v.type]);
      sink[v.type](v.value);
      return;
    case 'bool':
      sink.u32(VT.BOOL);
      sink.u8(v.value ? 1 : 0);
      return;
    case 'string':
      sink.u32(VT.STRING);
      sink.str(v.value);
      return;
    case 'string[]':
      sink.u32(VT.ARRAY);
      sink.u32(VT.STRING);
      sink.u64(v.value.length);
      for (const s of v.value) sink.str(s);
      return;
    case 'f32[]':
    case 'i32[]': {
      sink.u32(VT.ARRAY);
      sink.u32(v.type === 'f32[]' ? VT.F32 : VT.I32);
      sink.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) {
        if (v.type === 'f32[]') sink.f32(v.value[i] as number);
        else sink.i32(v.value[i] as number);
      }
      return;
    }
  }
}

/**
 * Write a GGUF file at `path`: `metadata` in insertion order, then `tensors`, whose bytes
 * `tensorData(info, index)` returns one tensor at a time, in order.
 */
export function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensorInfo[],
  tensorData: (info: GgufTensorInfo, index: number) => Uint8Array,
): { bytes: number } {
  const head = new ByteSink();
  head.u32(GGUF_MAGIC);
  head.u32(GGUF_VERSION);
  head.u64(tensors.length);
  head.u64(metadata.size + 1);
  head.str('general.alignment');
  writeValue(head, { type: 'u32', value: GGUF_ALIGNMENT });
  for (const [key, value] of metadata) {
    head.str(key);
    writeValue(head, value);
  }
  const align = (n: number): number => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  let offset = 0;
  for (const t of tensors) {
    if (t.type === GGML_TYPE.Q8_0 && (t.ne[0] as number) % 32 !== 0) {
      fail(
        t.name,
        `q8_0 needs rows that are a multiple of 32 values, this one has ${t.ne[0]}`,
        'use --type f16',
      );
    }
    head.str(t.name);
    head.u32(t.ne.length);
    for (const d of t.ne) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    offset = align(offset + ggmlBytes(t.type, t.ne));
  }
  head.pad(GGUF_ALIGNMENT);

  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'w');
  let written = 0;
  const put = (bytes: Uint8Array): void => {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(2 ** 30, bytes.length - off));
    written += bytes.length;
  };
  try {
    put(head.bytes());
    const dataStart = written;
    for (const [i, t] of tensors.entries()) {
      const bytes = tensorData(t, i);
      const want = ggmlBytes(t.type, t.ne);
      if (bytes.length !== want) throw new Error(`${t.name}: ${bytes.length} bytes, expected ${want}`);
      put(bytes);
      const padding = align(written - dataStart) - (written - dataStart);
      if (padding > 0) put(new Uint8Array(padding));
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncPath(dirname(path));
  return { bytes: written };
}
