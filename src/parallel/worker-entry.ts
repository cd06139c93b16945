/**
 * A training worker: its own tfjs engine and backend instance (with the same native kernels as the
 * main thread), the frozen base over the main thread's shared arrays, and LoRA variables that
 * mirror the main thread's. It answers one request at a time: the loss and summed LoRA gradients
 * of some rows (`grads`), the loss of some rows without dropout (`eval`), or for `mft eval` a
 * batch's loss sums and correct argmaxes (`score`) and a prompt's greedy continuation (`continue`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initWorkerBackend } from '../backend/index.js';
import { greedyContinuation } from '../eval/greedy.js';
import { type BatchScorer, batchScorer } from '../eval/loss-eval.js';
import { createLora, type LoraState, lossAndGrads } from '../lora/index.js';
import { forward } from '../model/index.js';
import { loadTokenizer, type MftTokenizer } from '../tokenizer/index.js';
import type { WorkerReply, WorkerRequest, WorkerSetup } from './protocol.js';
import { openSharedModel } from './shared-model.js';

const port = parentPort!;
const setup = workerData as WorkerSetup;
const send = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const failed = (e: unknown): WorkerReply => ({
  kind: 'failed',
  message: e instanceof Error ? e.message : String(e),
  ...(e instanceof Error && e.stack ? { stack: e.stack } : {}),
});

try {
  await initWorkerBackend(setup.backend);
  const model = openSharedModel(setup.model);
  const lora = setup.lora ? createLora(model, setup.lora) : null;
  const needLora = (): LoraState => {
    if (!lora) throw new Error('this worker was started without LoRA weights');
    return lora;
  };
  let version = -1;

  const scorers = new Map<boolean, BatchScorer>(); // kept: small models keep their widened layers
  let tokenizer: Promise<MftTokenizer> | null = null;
  const tokenizerOf = (): Promise<MftTokenizer> => {
    if (!setup.tokenizerDir) throw new Error('this worker was started without a tokenizer folder');
    tokenizer ??= loadTokenizer(setup.tokenizerDir);
    return tokenizer;
  };

  /** Copy the main thread's LoRA values into this worker's variables when they changed. */
  const syncLora = (v: number) => {
    if (v === version) return;
    let offset = 0;
    for (const key of setup.loraKeys) {
      const variable = needLora().variables.get(key)!;
      const values = setup.loraValues.slice(offset, offset + variable.size);
      tf.tidy(() => variable.assign(tf.tensor(values, variable.shape, 'float32')));
      offset += variable.size;
    }
    version = v;
  };

  const handle = async (req: WorkerRequest): Promise<void> => {
    syncLora(req.version);
    if (req.kind === 'score') {
      let scorer = scorers.get(req.withLora);
      if (!scorer) {
        const opts = {
          ...(req.withLora ? { lora: needLora().toModelLora() } : {}),
          chunkRows: req.chunkRows,
        };
        scorer = batchScorer(model, opts);
        scorers.set(req.withLora, scorer);
      }
      send({ kind: 'scored', ...(await scorer.score(req.batch)) });
      return;
    }
    if (req.kind === 'continue') {
      const out = await greedyContinuation(model, await tokenizerOf(), req.promptIds, {
        maxNewTokens: req.maxNewTokens,
        stopAtNewline: req.stopAtNewline,
        ...(req.withLora ? { lora: needLora().toModelLora() } : {}),
      });
      send({ kind: 'continued', ...out });
      return;
    }
    const lora = needLora();
    if (req.kind === 'eval') {
      const r = await forward(model, req.batch, { lora: lora.toModelLora() });
      send({ kind: 'done', lossSum: r.lossSum, count: r.count, grads: [] });
      return;
    }
    let lossSum = 0;
    let count = 0;
    const sums = new Map<string, tf.Tensor>();
    try {
      for (const p of req.pieces) {
        const r = await lossAndGrads(model, lora, p.batch, {
          lossScale: req.lossScale,
          dropoutSeed: p.dropoutSeed,
          dropoutRows: { start: p.start, total: p.total },
          checkpointing: setup.checkpointing,
        });
        lossSum += r.lossSum;
        count += r.count;
        for (const [k, g] of r.grads) {
          const prev = sums.get(k);
          sums.set(k, prev ? tf.add(prev, g) : g);
          if (prev) tf.dispose([prev, g]);
        }
      }
      const grads = await Promise.all(
        setup.loraKeys.map(async (k) => {
          const g = sums.get(k);
          if (!g) return new Float32Array(lora.variables.get(k)!.size);
          const d = (await g.data()) as Float32Array;
          return d.byteLength === d.buffer.byteLength ? d : d.slice(); // its own buffer, to transfer
        }),
      );
      send(
        { kind: 'done', lossSum, count, grads },
        grads.map((g) => g.buffer as ArrayBuffer),
      );
    } finally {
      tf.dispose([...sums.values()]);
    }
  };

  port.on('message', (req: WorkerRequest) => {
    handle(req).catch((e: unknown) => send(failed(e)));
  });
  send({ kind: 'ready' });
} catch (e) {
  send(failed(e));
}
