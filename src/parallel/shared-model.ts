/**
 * A loaded base model as a message for worker threads: every frozen weight's typed arrays in its
 * storage format (f32 / bf16 / f16 words, NF4 / int8 codes and scales), each backed by a
 * SharedArrayBuffer. `postMessage` hands a SharedArrayBuffer over by reference, so every worker
 * reads the same bytes the main thread loaded: the base exists once in the process, whatever the
 * number of workers. Arrays not yet shared (a dtype converted while loading) are moved into shared
 * memory once, by `shareModel`, and the main thread switches to those copies too.
 */
import type { LayerWeights, LoadedModel } from '../model/index.js';
import type { ModelSpec } from '../model/spec.js';
import { type BlockAbsmax, Int8Tensor, Nf4Tensor } from '../quant/index.js';
import { type FloatStorage, type FrozenTensor, StoredTensor } from '../weights/index.js';

type Shareable = Float32Array | Uint16Array | Uint8Array | Int8Array;

/** One frozen weight as plain data (structured-clone safe). */
export type SharedTensor =
  | {
      kind: 'float';
      name: string;
      shape: number[];
      storage: FloatStorage;
      data: Float32Array | Uint16Array;
    }
  | {
      kind: 'nf4' | 'int8';
      name: string;
      shape: number[];
      codes: Uint8Array | Int8Array;
      absmax: BlockAbsmax;
      blockSize: number;
    };

/** A `LoadedModel` as plain data over shared memory. */
export interface SharedModel {
  dir: string;
  spec: ModelSpec;
  configHash: string;
  stopTokenIds: number[];
  embed_tokens: SharedTensor;
  norm: SharedTensor;
  /** null: tied to embed_tokens. */
  lm_head: SharedTensor | null;
  layers: Record<string, SharedTensor>[];
}

/** `a` itself when its memory is shared already, else a copy in shared memory. */
function shared<T extends Shareable>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const Ctor = a.constructor as new (b: SharedArrayBuffer) => T;
  const out = new Ctor(new SharedArrayBuffer(a.byteLength));
  out.set(a as never);
  return out;
}

function shareAbsmax(a: BlockAbsmax): BlockAbsmax {
  return a instanceof Float32Array ? shared(a) : { ...a, codes: shared(a.codes), scales: shared(a.scales) };
}

function shareTensor(t: FrozenTensor): SharedTensor {
  if (t instanceof StoredTensor) {
    return { kind: 'float', name: t.name, shape: [...t.shape], storage: t.storage, data: shared(t.data) };
  }
  if (t instanceof Nf4Tensor || t instanceof Int8Tensor) {
    return {
      kind: t.storage,
      name: t.name,
      shape: [...t.shape],
      codes: shared(t.codes),
      absmax: shareAbsmax(t.absmax),
      blockSize: t.blockSize,
    };
  }
  throw new Error(`shareModel: weight "${t.name}" has storage ${t.storage}, which workers cannot share`);
}

function openTensor(s: SharedTensor): FrozenTensor {
  if (s.kind === 'float') return new StoredTensor(s.name, s.shape, s.storage, s.data);
  if (s.kind === 'nf4') return new Nf4Tensor(s.name, s.shape, s.codes as Uint8Array, s.absmax, s.blockSize);
  return new Int8Tensor(s.name, s.shape, s.codes as Int8Array, s.absmax, s.blockSize);
}

/**
 * The model as a message for workers, every array in shared memory.
 * @example const shared = shareModel(model); const mainModel = openSharedModel(shared);
 */
export function shareModel(model: LoadedModel): SharedModel {
  const tied = model.lm_head === model.embed_tokens;
  return {
    dir: model.dir,
    spec: model.spec,
    configHash: model.configHash,
    stopTokenIds: [...model.stopTokenIds],
    embed_tokens: shareTensor(model.embed_tokens),
    norm: shareTensor(model.norm),
    lm_head: tied ? null : shareTensor(model.lm_head),
    layers: model.layers.map((l) =>
      Object.fromEntries(Object.entries(l).map(([k, t]) => [k, shareTensor(t as FrozenTensor)])),
    ),
  };
}

/** A `LoadedModel` over the shared arrays of `s` (no copy). */
export function openSharedModel(s: SharedModel): LoadedModel {
  const embed_tokens = openTensor(s.embed_tokens);
  return {
    dir: s.dir,
    spec: s.spec,
    configHash: s.configHash,
    stopTokenIds: s.stopTokenIds,
    embed_tokens,
    norm: openTensor(s.norm),
    lm_head: s.lm_head === null ? embed_tokens : openTensor(s.lm_head),
    layers: s.layers.map(
      (l) =>
        Object.fromEntries(Object.entries(l).map(([k, t]) => [k, openTensor(t)])) as unknown as LayerWeights,
    ),
  };
}
