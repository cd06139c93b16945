/**
 * The bytes of one-node ONNX models: `Y = FusedMatMul(A, B)` (onnxruntime's com.microsoft contrib op,
 * a MatMul with transpose flags and numpy batch broadcasting) and `Y = Transpose(X, perm)`, with
 * every dimension symbolic so one session serves every shape of a given rank. Hand-encoded protobuf:
 * the models are tiny and fixed, and a protobuf library for them would be the larger dependency.
 */

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Field `field` with wire type 0 (varint). */
function intField(field: number, value: number): number[] {
  return [...varint(field << 3), ...varint(value)];
}

/** Field `field` with wire type 2 (length-delimited: bytes, string or a nested message). */
function bytesField(field: number, body: number[] | string): number[] {
  const bytes = typeof body === 'string' ? [...new TextEncoder().encode(body)] : body;
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
}

const FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/** ValueInfoProto of a float tensor of rank `rank` with symbolic dims `${name}0`, `${name}1`, ... */
function floatValueInfo(name: string, rank: number): number[] {
  const dims = Array.from({ length: rank }, (_, i) => bytesField(1, bytesField(2, `${name}${i}`))).flat();
  const tensorType = [...intField(1, FLOAT), ...bytesField(2, dims)];
  return [...bytesField(1, name), ...bytesField(2, bytesField(1, tensorType))];
}

function intAttribute(name: string, value: number): number[] {
  return [...bytesField(1, name), ...intField(3, value), ...intField(20, ATTR_INT)];
}

function intsAttribute(name: string, values: readonly number[]): number[] {
  return [...bytesField(1, name), ...values.flatMap((v) => intField(8, v)), ...intField(20, ATTR_INTS)];
}

const opset = (domain: string, version: number) =>
  bytesField(8, [...bytesField(1, domain), ...intField(2, version)]);

/** The model `Y = Transpose(X)` with the axis permutation `perm` (tfjs's and ONNX's meaning agree). */
export function transposeModel(perm: readonly number[]): Uint8Array {
  const node = [
    ...bytesField(1, 'X'),
    ...bytesField(2, 'Y'),
    ...bytesField(4, 'Transpose'),
    ...bytesField(5, intsAttribute('perm', perm)),
  ];
  const graph = [
    ...bytesField(1, node),
    ...bytesField(2, 'transpose'),
    ...bytesField(11, floatValueInfo('X', perm.length)),
    ...bytesField(12, floatValueInfo('Y', perm.length)),
  ];
  return new Uint8Array([...intField(1, 8), ...bytesField(7, graph), ...opset('', 17)]);
}

/** The model for inputs of rank `rankA` and `rankB` (each >= 2) and the two transpose flags. */
export function fusedMatMulModel(rankA: number, rankB: number, transA: boolean, transB: boolean): Uint8Array {
  const node = [
    ...bytesField(1, 'A'),
    ...bytesField(1, 'B'),
    ...bytesField(2, 'Y'),
    ...bytesField(4, 'FusedMatMul'),
    ...bytesField(5, intAttribute('transA', transA ? 1 : 0)),
    ...bytesField(5, intAttribute('transB', transB ? 1 : 0)),
    ...bytesField(7, 'com.microsoft'),
  ];
  const graph = [
    ...bytesField(1, node),
    ...bytesField(2, 'matmul'),
    ...bytesField(11, floatValueInfo('A', rankA)),
    ...bytesField(11, floatValueInfo('B', rankB)),
    ...bytesField(12, floatValueInfo('Y', Math.max(rankA, rankB))),
  ];
  const model = [
    ...intField(1, 8), // ir_version 8
    ...bytesField(7, graph),
    ...opset('', 17),
    ...opset('com.microsoft', 1),
  ];
  return new Uint8Array(model);
}
