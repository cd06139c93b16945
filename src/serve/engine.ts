/**
 * Continuous batching: every running request is one row of a batch; each decode step feeds every
 * row's last token through the model at once (its own KV cache, see model/row-cache.ts), and
 * requests join (after their prompt's prefill) and leave (at a stop or their token limit) between
 * steps. Rows for different adapters share the step: the frozen matmuls run on the whole batch and
 * each row adds its own adapter's LoRA term (model/linear.ts `RowLora`).
 */
import {
  applyRepetitionPenalty,
  type BatchLayerLora,
  decodeContext,
  type LayerLora,
  LINEAR_NAMES,
  type LoadedModel,
  lastLogits,
  type ModelLora,
  OutputHead,
  prefillContext,
  RowCache,
  sampleToken,
  type WeightProvider,
  weightsFor,
} from '../model/index.js';
import type { MftTokenizer } from '../tokenizer/index.js';
import { Rng } from '../util/index.js';

export interface EngineRequest {
  promptIds: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  /** Adapter name (null = the base model). */
  adapter: string | null;
  /** Ids that end the reply besides the model's EOS (a chat end-of-turn). */
  stopIds?: readonly number[];
  repetitionPenalty?: number;
  /** Each generated id as it is chosen; returning true ends the request (a stop string). */
  onToken?(id: number): boolean;
  /** Aborting ends the request after the current step (client gone, timeout). */
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'aborted';

export interface EngineResult {
  ids: number[];
  finishReason: FinishReason;
}

/** The queue is full: the caller answers 429. */
export class QueueFullError extends Error {}

interface Row {
  req: EngineRequest;
  cache: RowCache;
  rng: Rng;
  eos: Set<number>;
  ids: number[];
  last: number;
  resolve(r: EngineResult): void;
  reject(e: unknown): void;
}

export interface EngineOptions {
  /** Most rows decoded together. */
  maxBatch: number;
  /** Most requests waiting for a row; more get QueueFullError. */
  maxQueue: number;
}

export class Engine {
  private readonly waiting: Row[] = [];
  private readonly running: Row[] = [];
  private readonly weights: WeightProvider;
  private readonly head: OutputHead;
  private loop: Promise<void> | null = null;
  /** Decode steps run and rows they carried (for the batch-size figure). */
  readonly stats = { steps: 0, rows: 0 };

  constructor(
    private readonly model: LoadedModel,
    private readonly tokenizer: MftTokenizer,
    private readonly adapters: ReadonlyMap<string, ModelLora>,
    private readonly opts: EngineOptions,
  ) {
    this.weights = weightsFor(model);
    this.head = new OutputHead(model);
  }

  /** Requests decoding or waiting. */
  get load(): { running: number; waiting: number } {
    return { running: this.running.length, waiting: this.waiting.length };
  }

  /** Generate for one request; resolves when it ends. */
  submit(req: EngineRequest): Promise<EngineResult> {
    if (this.waiting.length >= this.opts.maxQueue) throw new QueueFullError('the queue is full');
    if (req.adapter !== null && !this.adapters.has(req.adapter))
      throw new Error(`unknown adapter ${req.adapter}`);
    return new Promise<EngineResult>((resolve, reject) => {
      const eos = new Set<number>([...this.model.stopTokenIds, ...(req.stopIds ?? [])]);
      if (this.tokenizer.eosId !== null) eos.add(this.tokenizer.eosId);
      this.waiting.push({
        req,
        cache: new RowCache(this.model.spec),
        rng: new Rng(req.seed),
        eos,
        ids: [],
        last: -1,
        resolve,
        reject,
      });
      this.kick();
    });
  }

  /** Start the decode loop unless it runs; a request that came as it ended starts it again. */
  private kick(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = null;
      if (this.waiting.length > 0) this.kick();
    });
  }

  /** Resolves when every request has ended. */
  async drain(): Promise<void> {
    while (this.loop) await this.loop;
  }

  dispose(): void {
    this.weights.dispose();
    this.head.dispose();
  }

  private async run(): Promise<void> {
    while (this.waiting.length > 0 || this.running.length > 0) {
      // Join: prefill waiting requests while rows are free.
      while (this.waiting.length > 0 && this.running.length < this.opts.maxBatch) {
        const row = this.waiting.shift() as Row;
        await this.guard([row], () => this.prefill(row));
      }
      if (this.running.length > 0) {
        const rows = [...this.running];
        await this.guard(rows, () => this.decode(rows));
      }
      // Let the HTTP side read requests and write tokens between steps.
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** Run a step; on an internal error fail its rows instead of the server. */
  private async guard(rows: Row[], f: () => Promise<void>): Promise<void> {
    try {
      await f();
    } catch (e) {
      for (const row of rows) this.finish(row, null, e);
    }
  }

  private async prefill(row: Row): Promise<void> {
    const ids = row.req.promptIds;
    const ctx = prefillContext(this.model.spec, row.cache, ids.length);
    const logits = await lastLogits(
      this.model,
      this.weights,
      this.head,
      ctx,
      ids,
      this.adapters.get(row.req.adapter ?? ''),
    );
    this.running.push(row);
    this.accept(row, logits);
  }

  private async decode(rows: Row[]): Promise<void> {
    const ctx = decodeContext(
      this.model.spec,
      rows.map((r) => r.cache),
    );
    // lastLogits disposes ctx, which moves every row's cache on by one position.
    const logits = await lastLogits(
      this.model,
      this.weights,
      this.head,
      ctx,
      rows.map((r) => r.last),
      this.rowLora(rows),
    );
    this.stats.steps += 1;
    this.stats.rows += rows.length;
    const V = this.model.spec.vocab_size;
    rows.forEach((row, b) => {
      this.accept(row, logits.subarray(b * V, (b + 1) * V));
    });
  }

  /** Adapters of a batch: one for all rows when they agree, else per row. */
  private rowLora(rows: Row[]): (LayerLora | BatchLayerLora | undefined)[] | undefined {
    const names = rows.map((r) => r.req.adapter);
    if (names.every((n) => n === names[0]))
      return names[0] === null ? undefined : this.adapters.get(names[0] as string);
    const perRow = names.map((n) => (n === null ? undefined : this.adapters.get(n)));
    return Array.from({ length: this.model.layers.length }, (_, i) => {
      const layer: BatchLayerLora = {};
      for (const p of LINEAR_NAMES) {
        const params = perRow.map((l) => l?.[i]?.[p]);
        if (params.some((x) => x !== undefined)) layer[p] = { perRow: params };
      }
      return layer;
    });
  }

  /** Sample a row's next token from its logits and end the row when it is done. */
  private accept(row: Row, logits: Float32Array): void {
    const { req } = row;
    if (req.signal?.aborted) {
      this.finish(row, 'aborted');
      return;
    }
    const l = Float32Array.from(logits);
    if (req.repetitionPenalty !== undefined && req.repetitionPenalty !== 1) {
      applyRepetitionPenalty(l, [...req.promptIds, ...row.ids], req.repetitionPenalty);
    }
    const id = sampleToken(l, req, row.rng);
    if (row.eos.has(id)) {
      this.finish(row, 'stop');
      return;
    }
    row.ids.push(id);
    row.last = id;
    if (req.onToken?.(id) === true) this.finish(row, 'stop');
    else if (row.ids.length >= req.maxTokens) this.finish(row, 'length');
  }

  private finish(row: Row, reason: FinishReason | null, error?: unknown): void {
    const at = this.running.indexOf(row);
    if (at >= 0) this.running.splice(at, 1);
    row.cache.dispose();
    if (reason === null) row.reject(error);
    else row.resolve({ ids: row.ids, finishReason: reason });
  }
}
