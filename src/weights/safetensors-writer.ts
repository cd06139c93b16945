/**
 * safetensors writer: the header (names, dtypes, shapes, offsets, `__metadata__`) is fixed first,
 * padded with spaces so the data section starts 8-byte aligned, then tensors are streamed one at a
 * time to a temporary file that is fsynced and renamed into place. Format: safetensors.ts.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { asUserFileError, tempPathFor } from '../util/index.js';
import { DTYPE_ITEMSIZE, IO_CHUNK, numelOf, type SafetensorsDtype, type TensorData } from './safetensors.js';

/** A tensor to write; F16/BF16 data are raw 16-bit words. */
export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData['data'];
}

let writerCount = 0;

/** Which typed array each dtype must be given as. */
function checkDataKind(where: string, dtype: SafetensorsDtype, data: TensorData['data']): void {
  const ok =
    (dtype === 'F32' && data instanceof Float32Array) ||
    ((dtype === 'F16' || dtype === 'BF16') && data instanceof Uint16Array) ||
    (dtype === 'I32' && data instanceof Int32Array) ||
    (dtype === 'I64' && data instanceof BigInt64Array) ||
    ((dtype === 'U8' || dtype === 'BOOL') && data instanceof Uint8Array);
  if (!ok)
    throw new Error(`writeSafetensors: ${where}: dtype ${dtype} does not match a ${data.constructor.name}`);
}

/**
 * Streams a safetensors file: the header is fixed up front from names, dtypes and shapes, then
 * tensors are written one at a time in that order, so a writer never holds more than one tensor.
 * The file is written under a temporary name, fsynced and renamed by `finish()`.
 */
export class SafetensorsWriter {
  readonly path: string;
  private readonly tmp: string;
  private fd: number | null;
  private readonly plan: { name: string; dtype: SafetensorsDtype; shape: number[]; byteLength: number }[];
  private next = 0;

  /**
   * @param path final file name
   * @param tensors the header, in file order
   * @param metadata the `__metadata__` string map
   */
  constructor(
    path: string,
    tensors: { name: string; dtype: SafetensorsDtype; shape: number[] }[],
    metadata?: Record<string, string>,
  ) {
    const header: Record<string, unknown> = {};
    if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
    this.plan = [];
    let offset = 0;
    for (const t of tensors) {
      if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) {
        throw new Error(`SafetensorsWriter: duplicate or reserved tensor name "${t.name}"`);
      }
      const numel = numelOf(t.shape);
      if (numel === null)
        throw new Error(`SafetensorsWriter: tensor "${t.name}" has bad shape ${JSON.stringify(t.shape)}`);
      const byteLength = numel * DTYPE_ITEMSIZE[t.dtype];
      header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + byteLength] };
      this.plan.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], byteLength });
      offset += byteLength;
    }
    let json = JSON.stringify(header);
    // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
    const jsonBytes = Buffer.byteLength(json, 'utf8');
    json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
    const headerBytes = Buffer.from(json, 'utf8');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(headerBytes.length));
    this.path = path;
    // The counter keeps two writers of one path in the same millisecond apart.
    this.tmp = `${tempPathFor(path)}-${writerCount++}`;
    try {
      this.fd = openSync(this.tmp, 'w');
    } catch (e) {
      throw asUserFileError(e, path) ?? e;
    }
    try {
      this.writeAll(prefix);
      this.writeAll(headerBytes);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Write the next tensor of the plan (its name must match). */
  write(name: string, data: TensorData['data']): void {
    // A misuse leaves a half-written file: drop it, the writer is dead.
    try {
      const p = this.plan[this.next];
      if (!p || p.name !== name) {
        throw new Error(
          `SafetensorsWriter.write: expected tensor "${p?.name ?? '(none left)'}", got "${name}"`,
        );
      }
      checkDataKind(name, p.dtype, data);
      if (data.byteLength !== p.byteLength) {
        throw new Error(
          `SafetensorsWriter.write: tensor "${name}" has ${data.byteLength} bytes, its shape needs ${p.byteLength}`,
        );
      }
      this.writeAll(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (e) {
      this.abort();
      throw e;
    }
    this.next++;
  }

  /** fsync and rename into place; every planned tensor must have been written. */
  finish(): void {
    if (this.next !== this.plan.length) {
      const missing = this.plan[this.next]?.name;
      this.abort();
      throw new Error(`SafetensorsWriter.finish: tensor "${missing}" was never written`);
    }
    const fd = this.fd;
    if (fd === null) throw new Error('SafetensorsWriter.finish: writer already closed');
    try {
      fsyncSync(fd);
    } catch (e) {
      this.abort();
      throw asUserFileError(e, this.path) ?? e;
    }
    closeSync(fd);
    this.fd = null;
    renameSync(this.tmp, this.path);
  }

  /** Drop the temporary file. */
  abort(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.tmp, { force: true });
  }

  private writeAll(bytes: Uint8Array): void {
    if (this.fd === null) throw new Error('SafetensorsWriter: writer closed');
    let off = 0;
    try {
      while (off < bytes.length) {
        off += writeSync(this.fd, bytes, off, Math.min(IO_CHUNK, bytes.length - off));
      }
    } catch (e) {
      // a full disk names the file being written (write errors carry no path)
      throw asUserFileError(e, this.path) ?? e;
    }
  }
}

/** Total bytes a safetensors file of these tensors occupies on disk (header included). */
export function tensorBytes(tensors: { dtype: SafetensorsDtype; shape: number[] }[]): number {
  let total = 0;
  for (const t of tensors) total += (numelOf(t.shape) ?? 0) * DTYPE_ITEMSIZE[t.dtype];
  return total;
}

/**
 * Write tensors as a safetensors file, atomically (temporary sibling, fsync, rename).
 * @param path the `.safetensors` file
 * @param tensors written in this order; data length must match dtype and shape
 * @param metadata optional `__metadata__` string map, e.g. `{format: 'pt'}`
 * @example writeSafetensors('a.safetensors', [{name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2])}]);
 */
export function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): void {
  const writer = new SafetensorsWriter(path, tensors, metadata);
  for (const t of tensors) writer.write(t.name, t.data);
  writer.finish();
}
