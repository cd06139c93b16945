/**
 * 5) Bytes per base parameter for each storage dtype: what the frozen weights hold outside tfjs
 * (values plus every scale), measured on the built model, and how long building (converting,
 * quantizing) took; and how fast a square matrix quantizes and dequantizes (what a quantized base
 * pays once per layer per forward, and again in the backward recompute).
 */
import { dequantize, quantize } from '../../src/quant/index.js';
import { Rng } from '../../src/util/index.js';
import { paramCounts } from '../lib/flops.js';
import { sig, time } from '../lib/measure.js';
import { heldBytes, type LlamaShape, randomLlama, type Storage } from '../lib/random-llama.js';

export interface FootprintJob {
  kind: 'footprint';
  model: LlamaShape;
  storages: Storage[];
  /** Side of the square matrix quantized and dequantized (4096: a 7B model's attention projection). */
  dequantSide: number;
}

export interface DequantRow {
  storage: 'nf4+dq' | 'int8';
  quantizeS: number;
  /** Best of 3 into a reused buffer, after a warm-up. */
  dequantizeS: number;
  valuesPerS: number;
  bytesPerParam: number;
}

export interface FootprintRow {
  storage: Storage;
  params: number;
  bytes: number;
  bytesPerParam: number;
  /** Bytes per parameter of the decoder projections alone (what int8 / nf4 quantize). */
  projectionBytesPerParam: number;
  buildS: number;
}

export interface FootprintResult {
  kind: 'footprint';
  rows: FootprintRow[];
  dequantSide: number;
  dequant: DequantRow[];
}

/** Build the model once per storage and weigh it. */
export function runFootprint(job: FootprintJob): FootprintResult {
  const rows = job.storages.map((storage): FootprintRow => {
    const built = time(() => randomLlama(job.model, storage, 1));
    const model = built.value;
    const counts = paramCounts(model.spec);
    const bytes = heldBytes(model);
    let projBytes = 0;
    for (const l of model.layers) {
      for (const t of [l.q_proj, l.k_proj, l.v_proj, l.o_proj, l.gate_proj, l.up_proj, l.down_proj]) {
        projBytes += t.byteLength;
      }
    }
    return {
      storage,
      params: counts.total,
      bytes,
      bytesPerParam: sig(bytes / counts.total),
      projectionBytesPerParam: sig(projBytes / (counts.perLayer * model.spec.num_hidden_layers)),
      buildS: sig(built.wallS),
    };
  });
  return { kind: 'footprint', rows, dequantSide: job.dequantSide, dequant: dequantSpeed(job.dequantSide) };
}

/** Quantize and dequantize a `side x side` matrix of N(0, 0.02) values with each quantized storage. */
function dequantSpeed(side: number): DequantRow[] {
  const n = side * side;
  const rng = new Rng(1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    values[i] = 0.02 * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  }
  const out = new Float32Array(n);
  const storages = [
    ['nf4+dq', 'nf4', true],
    ['int8', 'int8', false],
  ] as const;
  return storages.map(([storage, kind, doubleQuant]): DequantRow => {
    const q = time(() => quantize('w', [side, side], values, kind, { doubleQuant }));
    dequantize(q.value, out); // warm-up: JIT and first touch of `out`
    let best = Number.POSITIVE_INFINITY;
    for (let r = 0; r < 3; r++) best = Math.min(best, time(() => dequantize(q.value, out)).wallS);
    return {
      storage,
      quantizeS: sig(q.wallS),
      dequantizeS: sig(best),
      valuesPerS: sig(n / best),
      bytesPerParam: sig(q.value.byteLength / n),
    };
  });
}
