import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { type BackendChoice, initBackend } from '../backend/index.js';
import { checkTrainedBase, loraFromAdapter, openAdapter } from '../lora/index.js';
import { checkVocabulary, loadModel, type ModelLora } from '../model/index.js';
import { Engine } from '../serve/engine.js';
import { createApiServer } from '../serve/server.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { fail } from '../util/index.js';
import { collect } from './collect.js';

interface ServeFlags {
  model: string;
  adapter: string[];
  host: string;
  port: string;
  maxBatch: string;
  maxQueue: string;
  maxBodyBytes: string;
  timeout: string;
  backend: string;
}

function integer(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min) {
    fail(`--${flag}`, `expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** `NAME=DIR` of `--adapter`. */
function adapterSpec(value: string): { name: string; dir: string } {
  const at = value.indexOf('=');
  const name = value.slice(0, at);
  if (at <= 0 || at === value.length - 1 || !/^[\w.:-]+$/.test(name)) {
    fail('--adapter', `expected NAME=DIR (NAME of letters, digits, . _ : -), got ${JSON.stringify(value)}`);
  }
  return { name, dir: value.slice(at + 1) };
}

/** `mft serve`: an OpenAI-compatible HTTP server with continuous batching over base + adapters. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve a base model and its adapters over an OpenAI-compatible HTTP API, batching requests')
    .requiredOption('--model <dir>', 'base model directory')
    .option('--adapter <name=dir>', 'serve a PEFT adapter as model NAME (repeatable)', collect, [])
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free one)', '8080')
    .option('--max-batch <n>', 'most requests decoded together', '16')
    .option('--max-queue <n>', 'most requests waiting for a batch row; more get 429', '64')
    .option('--max-body-bytes <n>', 'largest request body', String(1024 * 1024))
    .option('--timeout <s>', 'longest a request may run, seconds', '300')
    .option('--backend <name>', 'auto | tensorflow | webgpu | wasm | cpu', 'auto')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft serve --model checkpoints/base/tinystories-260k\n' +
        '  $ mft serve --model DIR --adapter code=checkpoints/runs/code --adapter qa=checkpoints/runs/qa --port 8080',
    )
    .action(async (flags: ServeFlags) => {
      const port = integer('port', flags.port, 0);
      if (port > 65535) fail('--port', `expected a port 0..65535, got ${port}`);
      const maxBatch = integer('max-batch', flags.maxBatch, 1);
      const maxQueue = integer('max-queue', flags.maxQueue, 0);
      const maxBodyBytes = integer('max-body-bytes', flags.maxBodyBytes, 1);
      const timeout = integer('timeout', flags.timeout, 1);
      const specs = flags.adapter.map(adapterSpec);
      const baseId = basename(resolve(flags.model));
      for (const [i, s] of specs.entries()) {
        if (s.name === baseId || specs.findIndex((t) => t.name === s.name) !== i) {
          fail(
            '--adapter',
            `the model id ${JSON.stringify(s.name)} is used twice`,
            'give each adapter its own NAME',
          );
        }
      }
      const backend = await initBackend(flags.backend as BackendChoice);
      const model = await loadModel(flags.model);
      const tokenizer = await loadTokenizer(flags.model);
      checkVocabulary(flags.model, tokenizer);
      const adapters = new Map<string, ModelLora>();
      for (const s of specs) {
        const opened = openAdapter(s.dir);
        checkTrainedBase(opened, model);
        adapters.set(s.name, loraFromAdapter(model, opened.adapter).toModelLora());
      }
      const engine = new Engine(model, tokenizer, adapters, { maxBatch, maxQueue });
      const server = createApiServer({
        engine,
        tokenizer,
        baseId,
        adapterIds: specs.map((s) => s.name),
        limits: {
          maxBodyBytes,
          timeoutMs: timeout * 1000,
          contextLength: model.spec.max_position_embeddings,
        },
      });
      await new Promise<void>((ok, bad) => {
        server.once('error', (e: NodeJS.ErrnoException) =>
          bad(
            e.code === 'EADDRINUSE'
              ? fail(`${flags.host}:${port}`, 'the address is in use', 'pick another --port')
              : e,
          ),
        );
        server.listen(port, flags.host, () => ok());
      });
      const address = server.address();
      const shown =
        typeof address === 'object' && address !== null
          ? `${address.address}:${address.port}`
          : String(address);
      process.stderr.write(
        `mft: serving ${[baseId, ...adapters.keys()].join(', ')} on http://${shown} (backend ${backend}, batch <= ${maxBatch})\n`,
      );
      // SIGTERM / SIGINT: stop accepting, let in-flight requests finish, then exit 0.
      await new Promise<void>((done) => {
        const stop = () => {
          process.stderr.write('mft: shutting down, finishing in-flight requests\n');
          server.close();
          server.closeIdleConnections();
          engine
            .drain()
            .then(() => {
              engine.dispose();
              done();
            })
            .catch(() => done());
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
