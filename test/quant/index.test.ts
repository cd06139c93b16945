import { describe, expect, test } from 'vitest';
import { dequantize, Int8Tensor, Nf4Tensor, quantize, quantizedByteLength } from '../../src/quant/index.js';
import { MftError } from '../../src/util/index.js';
import type { FrozenTensor } from '../../src/weights/frozen-tensor.js';
import { NF4_HALF_MAX_GAP, NF4_REF, randomNormal, refAbsmax } from './reference.js';

// Decoder linears of one layer, HF shapes [out, in], of TinyLlama-1.1B (hidden 2048, 32 heads,
// 4 key/value heads of 64, intermediate 5632) and of Llama-2-7B (hidden 4096, intermediate 11008).
function llamaLinears(hidden: number, kvDim: number, inter: number): [string, number[]][] {
  return [
    ['q_proj', [hidden, hidden]],
    ['k_proj', [kvDim, hidden]],
    ['v_proj', [kvDim, hidden]],
    ['o_proj', [hidden, hidden]],
    ['gate_proj', [inter, hidden]],
    ['up_proj', [inter, hidden]],
    ['down_proj', [hidden, inter]],
  ];
}

// Cheap deterministic fill for large matrices (byte counts do not depend on the values): one
// buffer of the largest size, shared as prefixes, with a multiplicative hash instead of a normal RNG.
const big = new Float32Array(4096 * 4096);
for (let i = 0; i < big.length; i++) big[i] = ((Math.imul(i, 2654435761) >>> 0) / 2 ** 32 - 0.5) * 0.04;
function fill(n: number): Float32Array {
  return big.subarray(0, n);
}

describe('quantize / dequantize', () => {
  test('nf4 with double quantization: FrozenTensor fields and values within the NF4 + DQ bound', () => {
    const shape = [48, 100]; // 4800 values: 75 blocks of 64
    const values = randomNormal(4800, 17, 0.03);
    const t = quantize('model.layers.0.mlp.up_proj.weight', shape, values, 'nf4');
    expect(t).toBeInstanceOf(Nf4Tensor);
    expect(t.name).toBe('model.layers.0.mlp.up_proj.weight');
    expect(t.shape).toEqual(shape);
    expect(t.storage).toBe('nf4');
    expect((t as Nf4Tensor).doubleQuant).toBe(true); // default for nf4
    // 2400 code bytes + 75 one-byte absmax codes + 1 fp32 scale (75 <= 256) + 1 fp32 offset.
    expect(t.byteLength).toBe(2400 + 75 + 4 + 4);
    const back = dequantize(t);
    expect(t.toFloat32()).toEqual(back);
    const absmax = refAbsmax(values, 64);
    const mean = absmax.reduce((a, b) => a + b, 0) / absmax.length;
    const s = Math.max(...absmax.map((a) => Math.abs(a - mean)));
    for (let i = 0; i < 4800; i++) {
      const bound = NF4_HALF_MAX_GAP * absmax[Math.floor(i / 64)]! + s / 254;
      expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(bound * (1 + 1e-5));
    }
  });

  test('nf4 without double quantization keeps fp32 absmaxes (4 bytes per 64 values)', () => {
    const values = randomNormal(640, 3, 1);
    const t = quantize('w', [10, 64], values, 'nf4', { doubleQuant: false });
    expect(t.byteLength).toBe(320 + 10 * 4);
    const absmax = refAbsmax(values, 64);
    const back = dequantize(t);
    for (let i = 0; i < 640; i++) {
      const a = absmax[Math.floor(i / 64)]!;
      // Every value is exactly some level times its block's absmax.
      expect(NF4_REF.some((c) => Math.fround(c * a) === back[i])).toBe(true);
      expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(NF4_HALF_MAX_GAP * a * (1 + 1e-6));
    }
  });

  test('int8: one byte per value plus an fp32 absmax per 64; error at most absmax / 254', () => {
    const values = randomNormal(64 * 30, 8, 0.5);
    const t = quantize('w', [30, 64], values, 'int8');
    expect(t).toBeInstanceOf(Int8Tensor);
    expect(t.storage).toBe('int8');
    expect((t as Int8Tensor).doubleQuant).toBe(false); // default for int8
    expect(t.byteLength).toBe(64 * 30 + 30 * 4);
    const absmax = refAbsmax(values, 64);
    const back = dequantize(t);
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(
        (absmax[Math.floor(i / 64)]! / 254) * (1 + 1e-6),
      );
    }
    const dq = quantize('w', [30, 64], values, 'int8', { doubleQuant: true });
    expect(dq.byteLength).toBe(64 * 30 + 30 + 4 + 4);
  });

  test('bytes per parameter on a 4096x4096 matrix: nf4 + double quant <= 0.52, int8 <= 1.07', () => {
    const n = 4096 * 4096;
    const values = fill(n);
    const nf4 = quantize('w', [4096, 4096], values, 'nf4', { doubleQuant: true });
    const int8 = quantize('w', [4096, 4096], values, 'int8', { doubleQuant: false });
    // Independent count: 4 bits + 1 byte per 64 + 4 bytes per 64 * 256 + 4; 1 byte + 4 bytes per 64.
    expect(nf4.byteLength).toBe(n / 2 + n / 64 + (4 * n) / (64 * 256) + 4);
    expect(int8.byteLength).toBe(n + (4 * n) / 64);
    expect(nf4.byteLength / n).toBeLessThanOrEqual(0.52);
    expect(int8.byteLength / n).toBeLessThanOrEqual(1.07);
    expect(quantizedByteLength([4096, 4096], 'nf4', true)).toBe(nf4.byteLength);
    expect(quantizedByteLength([4096, 4096], 'int8', false)).toBe(int8.byteLength);
  });

  test('bytes per parameter over the decoder linears of a Llama-shaped layer', () => {
    let params = 0;
    const bytes = { nf4: 0, nf4NoDq: 0, int8: 0 };
    for (const [name, shape] of llamaLinears(2048, 256, 5632)) {
      const values = fill(shape[0]! * shape[1]!);
      params += values.length;
      const t = quantize(`model.layers.0.${name}.weight`, shape, values, 'nf4');
      bytes.nf4 += t.byteLength;
      expect(quantizedByteLength(shape, 'nf4', true)).toBe(t.byteLength);
      bytes.nf4NoDq += quantizedByteLength(shape, 'nf4', false);
      bytes.int8 += quantizedByteLength(shape, 'int8', false);
    }
    expect(bytes.nf4 / params).toBeLessThanOrEqual(0.52);
    expect(bytes.nf4NoDq / params).toBeCloseTo(0.5625, 6); // 4 bits + 32 bits per 64
    expect(bytes.int8 / params).toBeLessThanOrEqual(1.07);
    // Llama-2-7B, all 32 layers, from the shapes alone.
    let p7 = 0;
    let b7 = 0;
    for (const [, shape] of llamaLinears(4096, 4096, 11008)) {
      p7 += 32 * shape[0]! * shape[1]!;
      b7 += 32 * quantizedByteLength(shape, 'nf4', true);
    }
    expect(b7 / p7).toBeLessThanOrEqual(0.52);
    expect((8 * b7) / p7).toBeCloseTo(4 + 8 / 64 + 32 / (64 * 256), 4); // ~4.127 bits per parameter
  });

  test('a NaN or infinite weight is a user error naming the tensor and index', () => {
    const values = randomNormal(200, 1, 1);
    values[130] = Number.NaN;
    expect(() => quantize('model.layers.3.self_attn.k_proj.weight', [2, 100], values, 'nf4')).toThrow(
      MftError,
    );
    expect(() => quantize('model.layers.3.self_attn.k_proj.weight', [2, 100], values, 'nf4')).toThrow(
      /^model\.layers\.3\.self_attn\.k_proj\.weight: value NaN at flat index 130 cannot be quantized/,
    );
    values[130] = Number.NEGATIVE_INFINITY;
    expect(() => quantize('w', [200], values, 'int8')).toThrow(/value -Infinity at flat index 130/);
  });

  test('a shape that does not match the values is a bug report naming both', () => {
    expect(() => quantize('w', [3, 5], new Float32Array(14), 'nf4')).toThrow(
      /must hold 15 values \(shape \[3, 5\]\), got 14/,
    );
  });

  test('dequantize writes into a caller buffer, and widens non-quantized tensors too', () => {
    const values = randomNormal(256, 2, 1);
    const t = quantize('w', [4, 64], values, 'nf4');
    const out = new Float32Array(300);
    expect(dequantize(t, out)).toBe(out);
    expect(out.subarray(0, 256)).toEqual(dequantize(t));
    // A stand-in for a 16-bit stored tensor: dequantize falls back to toFloat32().
    const plain: FrozenTensor = {
      name: 'norm',
      shape: [3],
      storage: 'f32',
      byteLength: 12,
      toFloat32: () => Float32Array.from([1, 2, 3]),
    };
    expect(Array.from(dequantize(plain))).toEqual([1, 2, 3]);
    const out3 = new Float32Array(4);
    expect(Array.from(dequantize(plain, out3))).toEqual([1, 2, 3, 0]);
    expect(() => dequantize(plain, new Float32Array(2))).toThrow(/'out' passed to 'dequantize'/);
  });
});
