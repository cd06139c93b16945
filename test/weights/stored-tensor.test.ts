import { describe, expect, test } from 'vitest';
import { MftError } from '../../src/util/index.js';
import { StoredTensor } from '../../src/weights/stored-tensor.js';

// Values exactly representable in bf16 and f16 (few mantissa bits), with their words written by hand.
const exact = [1.5, -2, 0.15625, 0];
const exactBf16 = [0x3fc0, 0xc000, 0x3e20, 0x0000];
const exactF16 = [0x3e00, 0xc000, 0x3100, 0x0000];

describe('StoredTensor.fromData', () => {
  test('keeps the file dtype by default', () => {
    const t = StoredTensor.fromData('w', { dtype: 'BF16', shape: [2, 2], data: new Uint16Array(exactBf16) });
    expect(t.storage).toBe('bf16');
    expect(t.byteLength).toBe(8);
    expect([...t.toFloat32()]).toEqual(exact);
  });

  test('narrows an f32 file to bf16 or f16 storage on the way in', () => {
    const src = { dtype: 'F32' as const, shape: [4], data: new Float32Array(exact) };
    const b = StoredTensor.fromData('w', src, 'bf16');
    expect(b.storage).toBe('bf16');
    expect([...b.data]).toEqual(exactBf16);
    expect(b.byteLength).toBe(8);
    const h = StoredTensor.fromData('w', src, 'f16');
    expect([...h.data]).toEqual(exactF16);
    expect([...h.toFloat32()]).toEqual(exact);
  });

  test('bf16 storage of arbitrary values is within half a bf16 ulp', () => {
    const vals = new Float32Array(
      Array.from({ length: 200 }, (_, i) => Math.sin(i * 1.7) * 10 ** ((i % 7) - 3)),
    );
    const t = StoredTensor.fromData('w', { dtype: 'F32', shape: [200], data: vals }, 'bf16');
    const back = t.toFloat32();
    for (let i = 0; i < vals.length; i++) {
      const x = vals[i] as number;
      // bf16 keeps 8 significant bits: ulp = 2^(floor(log2|x|) - 7), half of it is the bound.
      const halfUlp = 2 ** (Math.floor(Math.log2(Math.abs(x))) - 8);
      expect(Math.abs((back[i] as number) - x)).toBeLessThanOrEqual(halfUlp);
    }
  });

  test('widens f16 to f32 and converts f16 to bf16', () => {
    const src = { dtype: 'F16' as const, shape: [4], data: new Uint16Array(exactF16) };
    expect([...(StoredTensor.fromData('w', src, 'f32').data as Float32Array)]).toEqual(exact);
    expect([...StoredTensor.fromData('w', src, 'bf16').data]).toEqual(exactBf16);
  });

  test('a bf16 value past the f16 range is an error naming the tensor', () => {
    const src = { dtype: 'BF16' as const, shape: [1], data: new Uint16Array([0x4780]) }; // 65536
    expect(() => StoredTensor.fromData('model.norm.weight', src, 'f16')).toThrow(
      /^model\.norm\.weight: value 65536/,
    );
  });

  test('integer tensors are refused', () => {
    expect(() => StoredTensor.fromData('ids', { dtype: 'I32', shape: [1], data: new Int32Array(1) })).toThrow(
      MftError,
    );
  });

  test('toFloat32 returns a copy', () => {
    const data = new Float32Array([1, 2]);
    const t = StoredTensor.fromData('w', { dtype: 'F32', shape: [2], data });
    t.toFloat32()[0] = 9;
    expect(t.toFloat32()[0]).toBe(1);
  });

  test('rowsToFloat32 widens only the rows asked for', () => {
    const t = StoredTensor.fromData('emb', {
      dtype: 'BF16',
      shape: [2, 2],
      data: new Uint16Array(exactBf16),
    });
    expect([...t.rowsToFloat32(1)]).toEqual([0.15625, 0]);
    expect([...t.rowsToFloat32(0, 2)]).toEqual(exact);
    expect(() => t.rowsToFloat32(1, 2)).toThrow('rows [1, 3) outside "emb" (2 rows)');
  });
});
