import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { SafetensorsWriter, writeSafetensors } from '../../src/weights/safetensors-writer.js';
import { errorOf } from '../helpers/error-of.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const dir = fileTempDir('st');
let counter = 0;

/** A safetensors file built by hand: u64 LE header length, header text, data bytes. */
function rawFile(header: string | object, data: Uint8Array = new Uint8Array(0), headerLen?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
  const path = join(dir, `f${counter++}.safetensors`);
  writeFileSync(path, Buffer.concat([len, h, data]));
  return path;
}

/** Exact error text of opening `path`. */
const openError = (path: string): string => errorOf(() => SafetensorsFile.open(path).close());

const FIX = ' (fix: the file is corrupt or truncated: download or write it again)';

describe('round trip', () => {
  test('every dtype, with metadata, survives write then read bit for bit', () => {
    const path = join(dir, 'all.safetensors');
    const tensors = [
      {
        name: 'f32',
        dtype: 'F32' as const,
        shape: [2, 3],
        data: new Float32Array([1, -2.5, 3e-40, Number.NaN, 1e30, -0]),
      },
      { name: 'f16', dtype: 'F16' as const, shape: [3], data: new Uint16Array([0x3c00, 0x7c00, 0x0001]) },
      { name: 'bf16', dtype: 'BF16' as const, shape: [1, 2], data: new Uint16Array([0x3f80, 0xc049]) },
      { name: 'i32', dtype: 'I32' as const, shape: [2], data: new Int32Array([-7, 2147483647]) },
      { name: 'i64', dtype: 'I64' as const, shape: [2], data: new BigInt64Array([-1n, 9007199254740993n]) },
      { name: 'u8', dtype: 'U8' as const, shape: [3], data: new Uint8Array([0, 128, 255]) },
      { name: 'bool', dtype: 'BOOL' as const, shape: [2], data: new Uint8Array([1, 0]) },
      { name: 'scalar', dtype: 'F32' as const, shape: [], data: new Float32Array([42]) },
      { name: 'empty', dtype: 'F32' as const, shape: [0, 4], data: new Float32Array(0) },
    ];
    writeSafetensors(path, tensors, { format: 'pt', note: 'é ü' });
    const f = SafetensorsFile.open(path);
    expect(f.metadata).toEqual({ format: 'pt', note: 'é ü' });
    expect(f.names()).toEqual(tensors.map((t) => t.name));
    for (const t of tensors) {
      const got = f.read(t.name);
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength)).toEqual(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      );
      expect(f.info(t.name)).toEqual({ dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength });
    }
    expect(f.read('i32', { shared: true }).data.buffer).toBeInstanceOf(SharedArrayBuffer);
    f.close();
    expect(readdirSync(dir).filter((n) => n.startsWith('.mft-tmp'))).toEqual([]);
  });

  test('the written layout is the format: u64 length, space-padded JSON to a multiple of 8, LE data', () => {
    const path = join(dir, 'layout.safetensors');
    writeSafetensors(path, [
      { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) },
      { name: 'b', dtype: 'I32', shape: [1], data: new Int32Array([258]) },
    ]);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = bytes.subarray(8, 8 + n).toString('utf8');
    expect(text.startsWith('{')).toBe(true);
    expect(text.trimEnd().length).toBeGreaterThan(n - 8);
    expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
    expect(JSON.parse(text)).toEqual({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'I32', shape: [1], data_offsets: [8, 12] },
    });
    const data = bytes.subarray(8 + n);
    expect(data.length).toBe(12);
    expect(data.readFloatLE(0)).toBe(1.5);
    expect(data.readFloatLE(4)).toBe(-2);
    expect([...data.subarray(8)]).toEqual([2, 1, 0, 0]);
  });

  test('reads a file written by hand in the reference layout', () => {
    const data = Buffer.alloc(10);
    data.writeUInt16LE(0x3c00, 0);
    data.writeFloatLE(0.25, 2);
    data.writeInt32LE(-3, 6);
    const path = rawFile(
      `${JSON.stringify({
        __metadata__: { format: 'pt' },
        h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
        f: { dtype: 'F32', shape: [1, 1], data_offsets: [2, 6] },
        i: { dtype: 'I32', shape: [1], data_offsets: [6, 10] },
      })}   `,
      data,
    );
    const f = SafetensorsFile.open(path);
    expect([...(f.read('h').data as Uint16Array)]).toEqual([0x3c00]);
    expect([...(f.read('f').data as Float32Array)]).toEqual([0.25]);
    expect([...(f.read('i').data as Int32Array)]).toEqual([-3]);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(() => f.read('nope')).toThrow(
      `${path}: no tensor named "nope" (fix: check the tensor name against the model architecture)`,
    );
    f.close();
  });

  test('the writer streams tensors in header order and refuses a mismatch', () => {
    const path = join(dir, 'stream.safetensors');
    const plan = [
      { name: 'x', dtype: 'BF16' as const, shape: [2] },
      { name: 'y', dtype: 'F32' as const, shape: [1] },
    ];
    const w0 = new SafetensorsWriter(path, plan);
    expect(() => w0.write('y', new Float32Array(1))).toThrow('expected tensor "x", got "y"');
    const w = new SafetensorsWriter(path, plan);
    w.write('x', new Uint16Array([1, 2]));
    expect(() => w.write('y', new Float32Array(2))).toThrow('tensor "y" has 8 bytes, its shape needs 4');
    const w1 = new SafetensorsWriter(path, plan);
    w1.write('x', new Uint16Array([3, 4]));
    w1.write('y', new Float32Array([5]));
    w1.finish();
    const f = SafetensorsFile.open(path);
    expect([...(f.read('x').data as Uint16Array)]).toEqual([3, 4]);
    f.close();
    const w2 = new SafetensorsWriter(path, [{ name: 'z', dtype: 'F32', shape: [1] }]);
    expect(() => w2.finish()).toThrow('tensor "z" was never written');
    expect(() =>
      writeSafetensors(path, [{ name: 'q', dtype: 'F16', shape: [1], data: new Float32Array(1) }]),
    ).toThrow('dtype F16 does not match a Float32Array');
    expect(readdirSync(dir).filter((n) => n.startsWith('.mft-tmp'))).toEqual([]);
  });
});

describe('broken files', () => {
  const ok = (n: number) => new Uint8Array(n);

  test('shorter than the length prefix', () => {
    const path = join(dir, 'tiny.safetensors');
    writeFileSync(path, Buffer.from([1, 2, 3, 4, 5]));
    expect(openError(path)).toBe(
      `${path}: not a safetensors file: 5 bytes, shorter than the 8-byte header length${FIX}`,
    );
  });

  test('header length over the limit', () => {
    const path = rawFile('{}', ok(0), 200_000_000n);
    expect(openError(path)).toBe(
      `${path}: header length 200000000 bytes exceeds the 100000000-byte limit${FIX}`,
    );
  });

  test('header length past the end of the file', () => {
    const path = rawFile('{}', ok(0), 1000n);
    expect(openError(path)).toBe(
      `${path}: header length 1000 bytes runs past the end of the file (10 bytes)${FIX}`,
    );
  });

  test('header is not JSON', () => {
    const path = rawFile('{"a": ');
    expect(openError(path)).toMatch(
      new RegExp(`^${path}: header is not valid JSON: .+ \\(fix: the file is corrupt`),
    );
  });

  test('header is not an object', () => {
    const path = rawFile('[1, 2]');
    expect(openError(path)).toBe(`${path}: header is not a JSON object${FIX}`);
  });

  test('unknown dtype', () => {
    const path = rawFile({ w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, ok(8));
    expect(openError(path)).toBe(
      `${path}: tensor "w": unknown dtype "F64" (supported: F32, F16, BF16, I32, I64, U8, BOOL)${FIX}`,
    );
  });

  test('bad shape', () => {
    const path = rawFile({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, ok(8));
    expect(openError(path)).toBe(
      `${path}: tensor "w": shape [2,-1] is not a list of non-negative integers${FIX}`,
    );
  });

  test('bad data_offsets', () => {
    const path = rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, ok(4));
    expect(openError(path)).toBe(
      `${path}: tensor "w": data_offsets [4,0] must be [begin, end] with 0 <= begin <= end${FIX}`,
    );
  });

  test('wrong byte count for the shape', () => {
    const path = rawFile({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, ok(20));
    expect(openError(path)).toBe(
      `${path}: tensor "w": data_offsets [0, 20] hold 20 bytes but F32 [2,3] needs 24${FIX}`,
    );
  });

  test('offsets past the data section', () => {
    const path = rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, ok(8));
    expect(openError(path)).toBe(
      `${path}: tensor "w": data_offsets [0, 16] run past the end of the data section (8 bytes)${FIX}`,
    );
  });

  test('a truncated file names the tensor that lost its data', () => {
    const path = join(dir, 'cut.safetensors');
    writeSafetensors(path, [
      { name: 'first', dtype: 'F32', shape: [4], data: new Float32Array(4) },
      { name: 'last', dtype: 'F32', shape: [4], data: new Float32Array(4) },
    ]);
    const size = readFileSync(path).length;
    truncateSync(path, size - 3);
    expect(openError(path)).toMatch(
      /tensor "last": data_offsets \[16, 32\] run past the end of the data section \(29 bytes\)/,
    );
  });

  test('a gap between tensors', () => {
    const path = rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] },
      },
      ok(20),
    );
    expect(openError(path)).toBe(
      `${path}: tensor "b": data_offsets [12, 20] leave a gap of 4 bytes after offset 8${FIX}`,
    );
  });

  test('overlapping tensors', () => {
    const path = rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      ok(12),
    );
    expect(openError(path)).toBe(
      `${path}: tensor "b": data_offsets [4, 12] overlap tensor "a" (which ends at 8)${FIX}`,
    );
  });

  test('two tensors sharing one range', () => {
    const path = rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'I32', shape: [2], data_offsets: [0, 8] },
      },
      ok(8),
    );
    expect(openError(path)).toBe(
      `${path}: tensor "b": data_offsets [0, 8] overlap tensor "a" (which ends at 8)${FIX}`,
    );
  });

  test('trailing bytes after the last tensor', () => {
    const path = rawFile({ a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, ok(5));
    expect(openError(path)).toBe(
      `${path}: the tensors end at data offset 2 but the data section has 5 bytes${FIX}`,
    );
  });

  test('metadata that is not a string map', () => {
    const path = rawFile({ __metadata__: { step: 3 } });
    expect(openError(path)).toBe(`${path}: __metadata__.step: expected a string, got 3${FIX}`);
  });

  test('a missing file', () => {
    const path = join(dir, 'nothing-here.safetensors');
    expect(openError(path)).toMatch(new RegExp(`^${path}: cannot open safetensors file: ENOENT`));
  });
});

describe('llama-golden fixture', () => {
  const fixture = 'test/fixtures/llama-golden/model.safetensors';

  test('lists the tiny Llama weights with their shapes', () => {
    const f = SafetensorsFile.open(fixture);
    const expected: Record<string, number[]> = {
      'model.embed_tokens.weight': [384, 64],
      'model.norm.weight': [64],
    };
    for (const l of [0, 1]) {
      const p = `model.layers.${l}`;
      Object.assign(expected, {
        [`${p}.input_layernorm.weight`]: [64],
        [`${p}.post_attention_layernorm.weight`]: [64],
        [`${p}.self_attn.q_proj.weight`]: [64, 64],
        [`${p}.self_attn.k_proj.weight`]: [32, 64],
        [`${p}.self_attn.v_proj.weight`]: [32, 64],
        [`${p}.self_attn.o_proj.weight`]: [64, 64],
        [`${p}.mlp.gate_proj.weight`]: [160, 64],
        [`${p}.mlp.up_proj.weight`]: [160, 64],
        [`${p}.mlp.down_proj.weight`]: [64, 160],
      });
    }
    expect(f.names().sort()).toEqual(Object.keys(expected).sort());
    for (const [name, shape] of Object.entries(expected))
      expect(f.info(name)).toMatchObject({ dtype: 'F32', shape });
    expect(f.metadata).toEqual({ format: 'pt' });
    f.close();
  });

  test('reads the values stored at the header offsets', () => {
    // Independent read: parse the header here and decode with a DataView.
    const bytes = readFileSync(fixture);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    const name = 'model.layers.1.mlp.down_proj.weight';
    const [begin] = header[name].data_offsets as [number, number];
    const f = SafetensorsFile.open(fixture);
    const got = f.read(name).data as Float32Array;
    f.close();
    const view = new DataView(bytes.buffer, bytes.byteOffset + 8 + n + begin);
    for (const i of [0, 1, 777, got.length - 1]) expect(got[i]).toBe(view.getFloat32(i * 4, true));
    expect(got.length).toBe(64 * 160);
  });
});
