/**
 * Training workers (`worker_threads`), one request at a time each. A worker that throws, fails to
 * start or exits fails the request in flight and every later one with an MftError naming the
 * worker (exit 2), so a broken worker never leaves the run waiting.
 */
import { Worker } from 'node:worker_threads';
import { shareNativeThreads } from '../backend/index.js';
import { MftError } from '../util/index.js';
import type { LoraMirror } from './lora-mirror.js';
import type { WorkerReply, WorkerRequest, WorkerSetup } from './protocol.js';

/** What a finished request returns: `done` for grads and eval, `scored` for score, `continued` for continue. */
export type WorkerResult = Extract<WorkerReply, { kind: 'done' | 'scored' | 'continued' }>;

export type DoneReply = Extract<WorkerReply, { kind: 'done' }>;
export type ScoredReply = Extract<WorkerReply, { kind: 'scored' }>;
export type ContinuedReply = Extract<WorkerReply, { kind: 'continued' }>;

interface Pending {
  resolve: (r: WorkerResult) => void;
  reject: (e: Error) => void;
}

/**
 * The worker script: the compiled `.js` next to this module, or under tsx when running from
 * TypeScript sources (tests, `npm run bench`).
 */
function spawn(setup: WorkerSetup): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const entry = JSON.stringify(new URL('./worker-entry.ts', here).href);
    const code = `import('tsx/esm/api').then((m) => { m.register(); return import(${entry}); });`;
    return new Worker(code, { eval: true, workerData: setup });
  }
  return new Worker(new URL('./worker-entry.js', here), { workerData: setup });
}

export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly pending: (Pending | null)[] = [];
  private failure: MftError | null = null;
  private closing = false;

  private constructor(readonly size: number) {}

  /**
   * Start `n` workers and wait until each has its backend and model ready.
   * @param setup what every worker gets (its `index` is set here)
   * @param mirror the LoRA values workers read
   */
  static async start(
    n: number,
    setup: Omit<WorkerSetup, 'index' | 'loraValues' | 'loraKeys'>,
    mirror: LoraMirror,
  ): Promise<WorkerPool> {
    const pool = new WorkerPool(n);
    const ready: Promise<void>[] = [];
    for (let index = 0; index < n; index++) {
      const w = spawn({ ...setup, index, loraValues: mirror.values, loraKeys: mirror.keys });
      pool.workers.push(w);
      pool.pending.push(null);
      ready.push(
        new Promise<void>((resolve, reject) => {
          pool.pending[index] = { resolve: () => resolve(), reject };
        }),
      );
      w.on('message', (m: WorkerReply) => pool.onMessage(index, m));
      w.on('error', (e) => pool.fail(index, e.message, e.stack));
      w.on('messageerror', (e) => pool.fail(index, `a message could not be read: ${e.message}`));
      w.on('exit', (code) => {
        if (!pool.closing) pool.fail(index, `exited with code ${code}`);
      });
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.close();
      throw e;
    }
    // The workers share the process's BLAS: each gets its share of the cores, not all of them.
    shareNativeThreads(n);
    return pool;
  }

  /** Send a `grads` or `eval` request to worker `k` and wait for its result. */
  async compute(k: number, req: WorkerRequest & { kind: 'grads' | 'eval' }): Promise<DoneReply> {
    return (await this.request(k, req)) as DoneReply;
  }

  /** Send a `score` request to worker `k` and wait for its sums. */
  async score(k: number, req: WorkerRequest & { kind: 'score' }): Promise<ScoredReply> {
    return (await this.request(k, req)) as ScoredReply;
  }

  /** Send a `continue` request to worker `k` and wait for the continuation. */
  async continue(k: number, req: WorkerRequest & { kind: 'continue' }): Promise<ContinuedReply> {
    return (await this.request(k, req)) as ContinuedReply;
  }

  /** Send `req` to worker `k` and wait for its result. */
  request(k: number, req: WorkerRequest): Promise<WorkerResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending[k]) throw new Error(`WorkerPool: worker ${k} already has a request in flight`);
    return new Promise<WorkerResult>((resolve, reject) => {
      this.pending[k] = { resolve, reject };
      this.workers[k]!.postMessage(req);
    });
  }

  /** Stop every worker. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    shareNativeThreads(1);
  }

  private onMessage(k: number, m: WorkerReply): void {
    if (m.kind === 'failed') {
      this.fail(k, m.message, m.stack);
      return;
    }
    const p = this.pending[k];
    this.pending[k] = null;
    if (m.kind === 'ready') p?.resolve({ kind: 'done', lossSum: 0, count: 0, grads: [] });
    else p?.resolve(m);
  }

  /** Worker k broke: fail what is in flight everywhere and every later request. */
  private fail(k: number, message: string, stack?: string): void {
    if (!this.failure) {
      this.failure = new MftError({
        where: `worker ${k + 1} of ${this.size}`,
        message: `failed: ${message.split('\n')[0]}`,
        fix: 'train in the main thread with num_workers: 1 (--set num_workers=1); --debug prints the worker stack',
      });
      if (stack) this.failure.stack = `${this.failure.stack}\nworker stack:\n${stack}`;
    }
    for (const [i, p] of this.pending.entries()) {
      this.pending[i] = null;
      p?.reject(this.failure);
    }
  }
}
