/**
 * Frozen weights widened on the device (model/device-weights.ts + backend/dequant-kernels.ts)
 * against the CPU path (weights/dtype.ts, quant/) and against values worked out by hand, on every
 * backend the kernels are registered for (webgpu: Mesa's lavapipe on CI).
 * - fp32, bf16, f16 and NF4 with fp32 absmaxes are bit for bit the CPU's values.
 * - int8 and double-quantized absmaxes: the GPU computes `code * (scale / 127)` in fp32, the CPU in
 *   float64 rounded once, so they may differ by a few ulps: |gpu - cpu| <= 2^-20 * max|cpu| over
 *   the tensor (8 ulps of its largest value).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { deviceToFloat32, disposeDeviceTensor, uploadFrozen } from '../../src/model/device-weights.js';
import { dequantize, Int8Tensor, Nf4Tensor, quantize } from '../../src/quant/index.js';
import { type FrozenTensor, f32ToBf16, f32ToF16, StoredTensor } from '../../src/weights/index.js';
import { onBackends } from '../helpers/backends.js';
import { randomNormal } from '../quant/reference.js';

/** Odd sizes: a partial block of 64, a last word holding fewer than 4 bytes. */
const SHAPE = [37, 91] as const;
const values = randomNormal(SHAPE[0] * SHAPE[1], 7, 0.05);
// Values that stress the 16-bit decoders: zeros, subnormals, the largest finite value, infinities.
const specials = Float32Array.from([0, -0, 1, -2, 2 ** -130, -(2 ** -140), 3.0e38, Infinity, -Infinity]);
const f16Specials = Float32Array.from([
  0,
  -0,
  1,
  -2,
  2 ** -24,
  -(2 ** -20),
  65504,
  6.1e-5,
  Infinity,
  -Infinity,
]);

const stored = (storage: 'f32' | 'bf16' | 'f16', v: Float32Array, shape: readonly number[]) =>
  new StoredTensor(
    'w',
    shape,
    storage,
    storage === 'f32' ? v : storage === 'bf16' ? f32ToBf16(v) : f32ToF16(v, 'w'),
  );

const CASES: [string, () => FrozenTensor, boolean][] = [
  ['fp32', () => stored('f32', values, SHAPE), true],
  ['bf16', () => stored('bf16', values, SHAPE), true],
  ['bf16 specials (1-D)', () => stored('bf16', specials, [specials.length]), true],
  ['f16', () => stored('f16', values, SHAPE), true],
  ['f16 specials and subnormals (1-D)', () => stored('f16', f16Specials, [f16Specials.length]), true],
  ['NF4', () => quantize('w', SHAPE, values, 'nf4', { doubleQuant: false }), true],
  ['NF4 + double quant', () => quantize('w', SHAPE, values, 'nf4', { doubleQuant: true }), false],
  ['int8', () => quantize('w', SHAPE, values, 'int8'), false],
  ['int8 + double quant', () => quantize('w', SHAPE, values, 'int8', { doubleQuant: true }), false],
];

/** `[rows, cols]` row-major -> `[cols, rows]`. */
function transposeRef(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c]!;
  return out;
}

async function onDevice(t: FrozenTensor, transpose: boolean): Promise<Float32Array> {
  const d = uploadFrozen(t);
  try {
    const w = deviceToFloat32(d, { transpose });
    const out = (await w.data()) as Float32Array;
    w.dispose();
    return out;
  } finally {
    disposeDeviceTensor(d);
  }
}

const bits = (v: Float32Array) => Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length));

onBackends(['cpu', 'wasm', 'webgpu'], 'weights widened on the device', (backend) => {
  beforeAll(() => initBackend(backend));

  for (const [name, make, exact] of CASES) {
    test(`${name}: ${exact ? 'bit for bit' : 'within 8 ulps of the largest value of'} the CPU path, as W and as W^T`, async () => {
      const t = make();
      const cpu = dequantize(t);
      const isMatrix = t.shape.length === 2;
      const [rows, cols] = isMatrix ? (t.shape as [number, number]) : [1, cpu.length];
      for (const transpose of isMatrix ? [false, true] : [false]) {
        const want = transpose ? transposeRef(cpu, rows, cols) : cpu;
        const got = await onDevice(t, transpose);
        expect(got.length).toBe(want.length);
        if (exact) {
          expect(bits(got)).toEqual(bits(want));
        } else {
          let maxAbs = 0;
          let maxDiff = 0;
          for (let i = 0; i < want.length; i++) {
            maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
            maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
          }
          expect(maxDiff, `max |device - cpu| ${maxDiff}, max |cpu| ${maxAbs}`).toBeLessThanOrEqual(
            2 ** -20 * maxAbs,
          );
        }
      }
    });
  }

  test('values worked out by hand: bf16 words, NF4 nibbles (high first), int8 codes', async () => {
    // bf16 0x3f80 = 1, 0xc040 = -3, 0x0001 = 2^-133 (subnormal)
    const bf16 = new StoredTensor('b', [3], 'bf16', Uint16Array.from([0x3f80, 0xc040, 0x0001]));
    expect(Array.from(await onDevice(bf16, false))).toEqual([1, -3, 2 ** -133]);
    // byte 0xf0: element 0 = code 15 (+1.0), element 1 = code 0 (-1.0); byte 0x7f: 0.0, +1.0; absmax 2, then 0.5
    const nf4 = new Nf4Tensor(
      'n',
      [2, 3],
      Uint8Array.from([0xf0, 0x7f, 0x8f]),
      Float32Array.from([2, 0.5]),
      4,
    );
    expect(Array.from(await onDevice(nf4, false))).toEqual(
      [2, -2, 0, 2, 0.5 * 0.07958029955625534, 0.5].map(Math.fround),
    );
    // the same as W^T [3, 2]
    expect(Array.from(await onDevice(nf4, true))).toEqual(
      [2, 2, -2, 0.5 * 0.07958029955625534, 0, 0.5].map(Math.fround),
    );
    // int8 codes 127, -127, 0, 1 with absmax 1.27: 1.27, -1.27, 0, 0.01 (to fp32 rounding)
    const int8 = new Int8Tensor('i', [4], Int8Array.from([127, -127, 0, 1]), Float32Array.from([1.27]), 64);
    const got = await onDevice(int8, false);
    for (const [i, v] of [1.27, -1.27, 0, 0.01].entries()) expect(got[i]).toBeCloseTo(v, 6);
  });

  afterAll(() => tf.disposeVariables());
});

describe('uploadFrozen', () => {
  test('refuses a storage with no device layout', () => {
    const odd = { name: 'x', shape: [2], storage: 'q3', byteLength: 1, toFloat32: () => new Float32Array(2) };
    expect(() => uploadFrozen(odd as unknown as FrozenTensor)).toThrow(/"x" has storage q3/);
  });
});
