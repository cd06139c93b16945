/**
 * `npm run bench:serve` — throughput of `mft serve` on this machine: requests/s and generated
 * tokens/s for 1, 4 and 16 concurrent clients, with continuous batching (--max-batch 16) and one
 * request at a time (--max-batch 1, the others queue). The server runs in this process on
 * 127.0.0.1; each client sends its requests one after another (greedy, fixed max_tokens).
 *
 *   npm run bench:serve                       tinystories-260k, 64 tokens per request
 *   npm run bench:serve -- --quick            fewer requests (seconds)
 *   npm run bench:serve -- --model DIR --backend wasm --tokens 32
 */
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { type BackendChoice, initBackend } from '../src/backend/index.js';
import { loadModel } from '../src/model/index.js';
import { Engine } from '../src/serve/engine.js';
import { createApiServer } from '../src/serve/server.js';
import { loadTokenizer } from '../src/tokenizer/index.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'checkpoints/base/tinystories-260k' },
    backend: { type: 'string', default: 'wasm' },
    tokens: { type: 'string', default: '64' },
    quick: { type: 'boolean', default: false },
  },
});
const tokens = Number(values.tokens);
const requestsPerClient = values.quick ? 2 : 4;

const backend = await initBackend(values.backend as BackendChoice);
const model = await loadModel(values.model);
const tokenizer = await loadTokenizer(values.model);
const PROMPTS = ['Once upon a time', 'Lily and Ben', 'The cat', 'One day, a big', 'Tom had a red ball'];

async function run(maxBatch: number, clients: number): Promise<{ rps: number; tps: number }> {
  const engine = new Engine(model, tokenizer, new Map(), { maxBatch, maxQueue: 64 });
  const server = createApiServer({
    engine,
    tokenizer,
    baseId: 'base',
    adapterIds: [],
    limits: { maxBodyBytes: 1 << 20, timeoutMs: 600_000, contextLength: model.spec.max_position_embeddings },
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/completions`;
  let generated = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let k = 0; k < requestsPerClient; k++) {
        const prompt = PROMPTS[(c + k) % PROMPTS.length];
        const r = await fetch(url, {
          method: 'POST',
          body: JSON.stringify({ model: 'base', prompt, max_tokens: tokens, temperature: 0 }),
        });
        const body = (await r.json()) as { usage?: { completion_tokens: number } };
        if (!r.ok || !body.usage) throw new Error(`request failed: ${r.status} ${JSON.stringify(body)}`);
        generated += body.usage.completion_tokens;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await new Promise<void>((ok) => server.close(() => ok()));
  engine.dispose();
  return { rps: (clients * requestsPerClient) / seconds, tps: generated / seconds };
}

process.stdout.write(
  `mft serve on ${values.model} (backend ${backend}), ${tokens} tokens per request, ${requestsPerClient} requests per client\n\n`,
);
process.stdout.write(
  '| clients | batched req/s | batched tok/s | one at a time req/s | one at a time tok/s | speed-up |\n',
);
process.stdout.write('| ---: | ---: | ---: | ---: | ---: | ---: |\n');
for (const clients of [1, 4, 16]) {
  const batched = await run(16, clients);
  const serial = await run(1, clients);
  process.stdout.write(
    `| ${clients} | ${batched.rps.toFixed(2)} | ${batched.tps.toFixed(0)} | ${serial.rps.toFixed(2)} | ${serial.tps.toFixed(0)} | ${(batched.tps / serial.tps).toFixed(2)}x |\n`,
  );
}
