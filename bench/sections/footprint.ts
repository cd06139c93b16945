/**
 * 5) Bytes per base parameter for each storage dtype: what the frozen weights hold outside tfjs
 * (values plus every scale), measured on the built model, and how long building (converting,
 * quantizing) took.
 */
import { paramCounts } from '../lib/flops.js';
import { sig, time } from '../lib/measure.js';
import { heldBytes, type LlamaShape, randomLlama, type Storage } from '../lib/random-llama.js';

export interface FootprintJob {
  kind: 'footprint';
  model: LlamaShape;
  storages: Storage[];
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
  return { kind: 'footprint', rows };
}
