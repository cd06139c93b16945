/**
 * The kernels that widen frozen weights kept on the device in their storage format
 * (weights/device-kernels.ts: the kernel names, attributes and word layout):
 *   webgpu: WGSL programs, one invocation per fp32 value written;
 *   cpu, wasm: the words read back as the typed arrays they came from and widened by the same code
 *   as the CPU path (weights/dtype.ts, quant/), so a device provider gives the same numbers there.
 *
 *   bf16:  bits(v) = word16 << 16                                      (exact)
 *   f16:   sign, 5-bit exponent, 10-bit mantissa rebuilt as an fp32      (exact, subnormals too)
 *   nf4:   v = NF4[code] * absmax[e / blockSize]                        (exact: one fp32 product)
 *   int8:  v = code * (absmax[e / blockSize] / 127)                     (fp32 arithmetic on the GPU)
 *   absmax of double quantization: offset + code * (scale[b / blockSize] / 127)
 * The CPU path computes the int8 and absmax formulas in float64 and rounds once, the GPU in fp32:
 * they may differ by a few ulps (test/backend/dequant-kernels.test.ts states the bound).
 */
import * as tf from '@tensorflow/tfjs';
import { dequantizeDoubleQuant, dequantizeInt8, dequantizeNf4, NF4_CODEBOOK } from '../quant/index.js';
import {
  bf16ToF32,
  DEQUANTIZE_ABSMAX_KERNEL,
  DEQUANTIZE_KERNEL,
  type DequantizeAbsmaxAttrs,
  type DequantizeAttrs,
  f16ToF32,
  type WordFormat,
  wordBytes,
} from '../weights/index.js';

type KernelArgs = Parameters<tf.KernelFunc>[0];

// ---- cpu and wasm: widen on the CPU side of the backend with the CPU path's own code ----

/** What every tfjs backend has (KernelBackend): synchronous read and write of a tensor's values. */
interface CpuSideBackend {
  readSync(dataId: tf.DataId): tf.TypedArray;
  write(values: Float32Array, shape: number[], dtype: 'float32'): tf.DataId;
}

function read(args: KernelArgs, name: string): tf.TypedArray {
  return (args.backend as CpuSideBackend).readSync(args.inputs[name]!.dataId);
}

function output(args: KernelArgs, values: Float32Array, shape: number[]): tf.TensorInfo {
  return {
    dataId: (args.backend as CpuSideBackend).write(values, shape, 'float32'),
    shape,
    dtype: 'float32',
  };
}

/** `[rows, cols]` -> `[cols, rows]`. */
function transposed(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c]!;
  return out;
}

function dequantizeOnCpu(args: KernelArgs): tf.TensorInfo {
  const a = args.attrs as unknown as DequantizeAttrs;
  const size = a.rows * a.cols;
  const words = read(args, 'words') as Int32Array;
  let v: Float32Array;
  if (a.format === 'bf16' || a.format === 'f16') {
    const u16 = new Uint16Array(words.buffer, words.byteOffset, size);
    v = a.format === 'bf16' ? bf16ToF32(u16) : f16ToF32(u16);
  } else {
    const absmax = read(args, 'absmax') as Float32Array;
    const q = { absmax, size, blockSize: a.blockSize };
    v =
      a.format === 'nf4'
        ? dequantizeNf4({ ...q, codes: wordBytes(words, Math.ceil(size / 2)) })
        : dequantizeInt8({ ...q, codes: new Int8Array(words.buffer, words.byteOffset, size) });
  }
  if (!a.transpose) return output(args, v, [size]);
  return output(args, transposed(v, a.rows, a.cols), [a.cols, a.rows]);
}

function dequantizeAbsmaxOnCpu(args: KernelArgs): tf.TensorInfo {
  const a = args.attrs as unknown as DequantizeAbsmaxAttrs;
  const words = read(args, 'codes') as Int32Array;
  const codes = new Int8Array(words.buffer, words.byteOffset, a.size);
  const scales = read(args, 'scales') as Float32Array;
  return output(args, dequantizeDoubleQuant({ ...a, codes, scales }), [a.size]);
}

// ---- webgpu: WGSL programs run by tfjs-backend-webgpu (its WebGPUProgram shape) ----

/** The parts of tfjs-backend-webgpu's backend a kernel uses. */
interface WebGpuKernelBackend {
  runWebGPUProgram(
    program: object,
    inputs: tf.TensorInfo[],
    dtype: 'float32',
    uniforms: { type: 'int32' | 'float32'; data: number[] }[],
  ): tf.TensorInfo;
}

const WORKGROUP = 64;

// The code of element e of the stored tensor, read from the words (layout: weights/device-kernels.ts).
const WGSL_VALUE: Record<WordFormat, string> = {
  bf16: `
    fn value(e : i32) -> f32 {
      let w = bitcast<u32>(words[e >> 1u]);
      return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (e & 1) == 1));
    }`,
  f16: `
    fn value(e : i32) -> f32 {
      let h = (bitcast<u32>(words[e >> 1u]) >> (16u * u32(e & 1))) & 0xffffu;
      let s = (h & 0x8000u) << 16u;
      let ex = (h >> 10u) & 0x1fu;
      let m = h & 0x3ffu;
      if (ex == 0u) {
        // zero or subnormal: m * 2^-24, exact in fp32
        return bitcast<f32>(s | bitcast<u32>(f32(m) * 5.9604644775390625e-8));
      }
      // Inf / NaN, else a normal: rebias the exponent 15 -> 127
      if (ex == 31u) { return bitcast<f32>(s | 0x7f800000u | (m << 13u)); }
      return bitcast<f32>(s | ((ex + 112u) << 23u) | (m << 13u));
    }`,
  nf4: `
    var<private> NF4 : array<f32, 16> = array<f32, 16>(${[...NF4_CODEBOOK].map(String).join(', ')});
    fn value(e : i32) -> f32 {
      let k = e >> 1u;
      let b = (bitcast<u32>(words[k >> 2u]) >> (8u * u32(k & 3))) & 0xffu;
      let code = select(b >> 4u, b & 15u, (e & 1) == 1);
      return NF4[code] * absmax[e / uniforms.blockSize];
    }`,
  int8: `
    fn value(e : i32) -> f32 {
      let code = extractBits(words[e >> 2u], 8u * u32(e & 3), 8u);
      return f32(code) * (absmax[e / uniforms.blockSize] / 127.0);
    }`,
};

/** A program with one invocation per output value, `main(index)` over the flat output. */
function flatProgram(
  key: string,
  variableNames: string[],
  outputShape: number[],
  uniforms: string,
  code: string,
) {
  const size = outputShape.reduce((a, b) => a * b, 1);
  return {
    variableNames,
    outputShape,
    shaderKey: key,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms,
    getUserCode: () => code,
  };
}

function dequantizeOnWebGpu(args: KernelArgs): tf.TensorInfo {
  const a = args.attrs as unknown as DequantizeAttrs;
  const quantized = a.format === 'nf4' || a.format === 'int8';
  const size = a.rows * a.cols;
  // Output index -> element of the stored [rows, cols] tensor (its transpose: [cols, rows]).
  const program = flatProgram(
    `mft_dequantize_${a.format}`,
    quantized ? ['words', 'absmax'] : ['words'],
    a.transpose ? [a.cols, a.rows] : [size],
    'rows : i32, cols : i32, transposed : i32, blockSize : i32,',
    `${WGSL_VALUE[a.format]}
    fn main(index : i32) {
      if (index < uniforms.size) {
        var e = index;
        if (uniforms.transposed == 1) { e = (index % uniforms.rows) * uniforms.cols + index / uniforms.rows; }
        setOutputAtIndex(index, value(e));
      }
    }`,
  );
  const inputs = quantized ? [args.inputs.words!, args.inputs.absmax!] : [args.inputs.words!];
  const ints = [a.rows, a.cols, a.transpose ? 1 : 0, a.blockSize].map((n) => ({
    type: 'int32' as const,
    data: [n],
  }));
  return (args.backend as unknown as WebGpuKernelBackend).runWebGPUProgram(program, inputs, 'float32', ints);
}

function dequantizeAbsmaxOnWebGpu(args: KernelArgs): tf.TensorInfo {
  const a = args.attrs as unknown as DequantizeAbsmaxAttrs;
  const program = flatProgram(
    'mft_dequantize_absmax',
    ['codes', 'scales'],
    [a.size],
    'blockSize : i32, offset : f32,',
    `fn main(index : i32) {
      if (index < uniforms.size) {
        let code = extractBits(codes[index >> 2u], 8u * u32(index & 3), 8u);
        setOutputAtIndex(index, uniforms.offset + f32(code) * (scales[index / uniforms.blockSize] / 127.0));
      }
    }`,
  );
  return (args.backend as unknown as WebGpuKernelBackend).runWebGPUProgram(
    program,
    [args.inputs.codes!, args.inputs.scales!],
    'float32',
    [
      { type: 'int32', data: [a.blockSize] },
      { type: 'float32', data: [a.offset] },
    ],
  );
}

let registered = false;

/** Register the dequantization kernels for webgpu, cpu and wasm (once; before or after init). */
export function registerDequantKernels(): void {
  if (registered) return;
  registered = true;
  const kernels: [string, string, tf.KernelFunc][] = [
    [DEQUANTIZE_KERNEL, 'webgpu', dequantizeOnWebGpu as tf.KernelFunc],
    [DEQUANTIZE_ABSMAX_KERNEL, 'webgpu', dequantizeAbsmaxOnWebGpu as tf.KernelFunc],
  ];
  for (const backendName of ['cpu', 'wasm']) {
    kernels.push([DEQUANTIZE_KERNEL, backendName, dequantizeOnCpu as tf.KernelFunc]);
    kernels.push([DEQUANTIZE_ABSMAX_KERNEL, backendName, dequantizeAbsmaxOnCpu as tf.KernelFunc]);
  }
  for (const [kernelName, backendName, kernelFunc] of kernels)
    tf.registerKernel({ kernelName, backendName, kernelFunc });
}
