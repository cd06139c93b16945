/**
 * Small stand-ins for the model and data sides of a run, so the loop's own behaviour (accumulation,
 * resume, signals, checkpoints, metrics) is tested in milliseconds.
 *
 * The model is a bigram language model with a low-rank logit table: logits(token) = onehot(token) A B
 * (A [V, r], B [r, V] trainable, both random at the start), dropout on the one-hot input drawn from the
 * counter-based seed the loop passes, cross-entropy summed over the tokens whose label is not -100.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../../src/model/batch.js';
import type { TrainSplit } from '../../src/train/data-cursor.js';
import type { EvalSplit, MicroBatchGrads, Trainable, TrainData } from '../../src/train/train.js';
import { mixSeed, Rng } from '../../src/util/index.js';
import { SafetensorsFile, writeSafetensors } from '../../src/weights/index.js';

export const VOCAB = 12;
const RANK = 6;

export interface BigramOptions {
  seed?: number;
  dropout?: number;
  /** Called before each lossAndGrads with the 1-based step (from the dropout seed order) and micro index. */
  onMicroBatch?: (call: number) => void;
  /** Replace the loss sum of the n-th lossAndGrads call (1-based), e.g. with NaN. */
  poisonCall?: { call: number; value: number };
}

function oneHot(ids: Int32Array, rows: number[]): tf.Tensor2D {
  const data = new Float32Array(rows.length * VOCAB);
  rows.forEach((pos, i) => {
    data[i * VOCAB + ids[pos]!] = 1;
  });
  return tf.tensor2d(data, [rows.length, VOCAB]);
}

/** Positions of the batch whose label carries loss. */
function trainedPositions(batch: Batch): number[] {
  const out: number[] = [];
  batch.labels.forEach((l, i) => {
    if (l !== -100) out.push(i);
  });
  return out;
}

export class BigramTrainable implements Trainable {
  readonly variables: Map<string, tf.Variable>;
  calls = 0;

  constructor(private readonly opts: BigramOptions = {}) {
    const rng = new Rng(opts.seed ?? 1);
    const init = (n: number) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 0.6);
    this.variables = new Map([
      ['bigram.lora_A.weight', tf.variable(tf.tensor2d(init(VOCAB * RANK), [VOCAB, RANK]))],
      ['bigram.lora_B.weight', tf.variable(tf.tensor2d(init(RANK * VOCAB), [RANK, VOCAB]))],
    ]);
  }

  private lossSumOf(batch: Batch, dropoutSeed: number | null): { pos: number[]; f: () => tf.Scalar } {
    const pos = trainedPositions(batch);
    const A = this.variables.get('bigram.lora_A.weight')!;
    const B = this.variables.get('bigram.lora_B.weight')!;
    const f = () =>
      tf.tidy(() => {
        let x: tf.Tensor2D = oneHot(batch.inputIds, pos);
        const rate = this.opts.dropout ?? 0;
        if (dropoutSeed !== null && rate > 0) {
          const keep = tf.randomUniform(x.shape, 0, 1, 'float32', dropoutSeed).greaterEqual(rate);
          x = x.mul(keep.cast('float32')).div(1 - rate);
        }
        const logits = x.matMul(A).matMul(B);
        const labels = oneHot(
          Int32Array.from(pos.map((p) => batch.labels[p]!)),
          pos.map((_, i) => i),
        );
        return tf.losses.softmaxCrossEntropy(labels, logits, undefined, 0, tf.Reduction.SUM) as tf.Scalar;
      });
    return { pos, f };
  }

  async lossAndGrads(batch: Batch, o: { lossScale: number; dropoutSeed: number }): Promise<MicroBatchGrads> {
    this.calls += 1;
    this.opts.onMicroBatch?.(this.calls);
    const { pos, f } = this.lossSumOf(batch, o.dropoutSeed);
    const keys = [...this.variables.keys()];
    let raw: tf.Scalar | null = null;
    const { value, grads } = tf.variableGrads(() => {
      const s = f();
      raw = tf.keep(s.clone());
      return s.mul(o.lossScale) as tf.Scalar;
    }, [...this.variables.values()]);
    let lossSum = (raw as unknown as tf.Scalar).dataSync()[0] as number;
    tf.dispose([value, raw as unknown as tf.Scalar]);
    if (this.opts.poisonCall?.call === this.calls) lossSum = this.opts.poisonCall.value;
    const out = new Map<string, tf.Tensor>();
    for (const k of keys) out.set(k, grads[this.variables.get(k)!.name]!);
    return { lossSum, count: pos.length, grads: out };
  }

  async evalLoss(batch: Batch): Promise<{ lossSum: number; count: number }> {
    const { pos, f } = this.lossSumOf(batch, null);
    const s = f();
    const lossSum = (await s.data())[0] as number;
    s.dispose();
    return { lossSum, count: pos.length };
  }

  async adapterWriter(): Promise<(dir: string) => void> {
    const tensors: { name: string; dtype: 'F32'; shape: number[]; data: Float32Array }[] = [];
    for (const [name, v] of this.variables) {
      tensors.push({
        name,
        dtype: 'F32' as const,
        shape: [...v.shape],
        data: (await v.data()) as Float32Array,
      });
    }
    return (dir) => {
      writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
      writeFileSync(join(dir, 'adapter_config.json'), '{"r": 3}\n');
    };
  }

  loadAdapter(dir: string): void {
    const file = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    for (const [name, v] of this.variables) {
      const t = file.read(name);
      tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, v.shape)));
    }
    file.close();
  }

  /** The adapter bytes as written to `dir`. */
  static adapterBytes(dir: string): Buffer {
    return readFileSync(join(dir, 'adapter_model.safetensors'));
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
  }
}

/**
 * A split of `numRows` rows of length `seqLen` following the rule next = (3 * cur + 1) mod V, with
 * a varying number of leading -100 labels (so rows carry different token counts).
 */
export function patternSplit(numRows: number, seqLen: number, seed: number): TrainSplit & EvalSplit {
  const rng = new Rng(seed);
  const rows = Array.from({ length: numRows }, (_, r) => {
    const ids = new Int32Array(seqLen);
    ids[0] = rng.int(VOCAB);
    for (let t = 1; t < seqLen; t++) ids[t] = (3 * ids[t - 1]! + 1) % VOCAB;
    const labels = new Int32Array(seqLen);
    const masked = r % 4; // 0..3 leading positions carry no loss
    for (let t = 0; t < seqLen; t++) labels[t] = t < masked || t === seqLen - 1 ? -100 : ids[t + 1]!;
    return { ids, labels };
  });
  return {
    numRows,
    batch(rowIndices: number[]): Batch {
      const B = rowIndices.length;
      const inputIds = new Int32Array(B * seqLen);
      const labels = new Int32Array(B * seqLen);
      const positionIds = new Int32Array(B * seqLen);
      rowIndices.forEach((r, b) => {
        inputIds.set(rows[r]!.ids, b * seqLen);
        labels.set(rows[r]!.labels, b * seqLen);
        for (let t = 0; t < seqLen; t++) positionIds[b * seqLen + t] = t;
      });
      return { batchSize: B, seqLen, inputIds, labels, segmentIds: new Int32Array(B * seqLen), positionIds };
    },
    epochOrder(epoch: number, s: number): number[] {
      return new Rng(mixSeed(s, epoch)).shuffle(Array.from({ length: numRows }, (_, i) => i));
    },
  };
}

export function patternData(numRows = 24, seqLen = 8, validationRows = 6): TrainData {
  return {
    train: patternSplit(numRows, seqLen, 11),
    validation: validationRows > 0 ? patternSplit(validationRows, seqLen, 12) : null,
    seqLen,
  };
}
