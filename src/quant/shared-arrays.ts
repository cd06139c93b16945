/**
 * Typed arrays for quantized storage, backed by `SharedArrayBuffer` so that worker threads can read
 * the frozen base without copies (design.md: "Keep the frozen weights in SharedArrayBuffer-backed
 * typed arrays").
 */

/** A zero-filled `Uint8Array` of `length` bytes in shared memory. */
export function sharedUint8(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

/** A zero-filled `Int8Array` of `length` bytes in shared memory. */
export function sharedInt8(length: number): Int8Array {
  return new Int8Array(new SharedArrayBuffer(length));
}

/** A zero-filled `Float32Array` of `length` values in shared memory. */
export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * 4));
}

/** Number of blocks of `blockSize` covering `size` values (the last one may be shorter). */
export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

/**
 * The loop of blockwise quantization: for each block `[start, end)` of `size` values, its scale
 * from `scaleOf`, stored as fp32 in a shared array, then `encode` writes the block's codes from
 * that stored scale (the value dequantization will read).
 * @returns the scales, one per block
 * @example const absmax = quantizeBlocks(n, 64, (s, e) => blockAbsmax(values, s, e), (s, e, a) => { ... });
 */
export function quantizeBlocks(
  size: number,
  blockSize: number,
  scaleOf: (start: number, end: number) => number,
  encode: (start: number, end: number, scale: number) => void,
): Float32Array {
  const scales = sharedFloat32(blockCount(size, blockSize));
  for (let b = 0; b < scales.length; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, size);
    scales[b] = scaleOf(start, end);
    encode(start, end, scales[b]!);
  }
  return scales;
}

/** max |values[i]| over the block `[start, end)`: the scale blockwise absmax quantization uses. */
export function blockAbsmax(values: Float32Array, start: number, end: number): number {
  let a = 0;
  for (let i = start; i < end; i++) {
    const v = Math.abs(values[i]!);
    if (v > a) a = v;
  }
  return a;
}

/** Throws when `blockSize` is not a positive integer (and even, with `opts.even`). */
export function checkBlockSize(blockSize: number, fn: string, opts: { even?: boolean } = {}): void {
  const even = opts.even === true;
  if (!Number.isInteger(blockSize) || blockSize <= 0 || (even && blockSize % 2 !== 0)) {
    throw new Error(
      `Argument 'blockSize' passed to '${fn}' must be a positive ${even ? 'even ' : ''}integer, got ${blockSize}`,
    );
  }
}

/** Throws when argument `arg` of `fn` holds `actual` items instead of `expected` (or fewer, with `atLeast`). */
export function checkLength(
  arg: string,
  fn: string,
  actual: number,
  expected: number,
  opts: { unit?: string; atLeast?: boolean } = {},
): void {
  const { unit = 'values', atLeast = false } = opts;
  if (atLeast ? actual < expected : actual !== expected) {
    throw new Error(
      `Argument '${arg}' passed to '${fn}' must hold ${atLeast ? 'at least ' : ''}${expected} ${unit}, got ${actual}`,
    );
  }
}
