/**
 * `mft serve` through the official `openai` client on 127.0.0.1: greedy completions equal llama2.c's
 * run.c story and `generate` (what `mft generate` runs); 16 concurrent streamed requests over the
 * base and two adapters, batched together, each equal its request run alone; limits and bad
 * requests get OpenAI-style errors naming the field; SIGTERM lets an in-flight request finish.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { chatPrompt } from '../../src/data/format/chat-prompt.js';
import { loraFromAdapter } from '../../src/lora/index.js';
import { loadAdapter, saveAdapter } from '../../src/lora/peft-adapter.js';
import { generate, type LoadedModel, loadModel, type ModelLora } from '../../src/model/index.js';
import { Engine } from '../../src/serve/engine.js';
import { createApiServer } from '../../src/serve/server.js';
import { loadTokenizer, type MftTokenizer } from '../../src/tokenizer/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { randomAdapter } from '../helpers/random-adapter.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const MODEL = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
const runC = readFileSync(
  join(REPO_ROOT, 'test/fixtures/stories260K/greedy_t0_n256_noprompt.ids.txt'),
  'utf8',
)
  .trim()
  .split(/\s+/)
  .map(Number);
const tmp = fileTempDir('serve');

let model: LoadedModel;
let tok: MftTokenizer;
const loras = new Map<string, ModelLora>();

interface Running {
  server: Server;
  engine: Engine;
  client: OpenAI;
  url: string;
}

async function start(
  opts: { maxBatch?: number; maxQueue?: number; timeoutMs?: number } = {},
): Promise<Running> {
  const engine = new Engine(model, tok, loras, {
    maxBatch: opts.maxBatch ?? 16,
    maxQueue: opts.maxQueue ?? 64,
  });
  const server = createApiServer({
    engine,
    tokenizer: tok,
    baseId: 'tinystories-260k',
    adapterIds: [...loras.keys()],
    limits: {
      maxBodyBytes: 4096,
      timeoutMs: opts.timeoutMs ?? 60_000,
      contextLength: model.spec.max_position_embeddings,
    },
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, engine, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

async function stop(r: Running): Promise<void> {
  await new Promise<void>((ok) => r.server.close(() => ok()));
  await r.engine.drain();
  r.engine.dispose();
}

let main: Running;
beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL);
  tok = await loadTokenizer(MODEL);
  for (const [name, seed] of [
    ['story-a', 5],
    ['story-b', 9],
  ] as const) {
    saveAdapter(join(tmp, name), randomAdapter(model, { seed, bScale: 0.4, baseModel: MODEL }));
    loras.set(name, loraFromAdapter(model, loadAdapter(join(tmp, name))).toModelLora());
  }
  main = await start();
});
afterAll(async () => {
  await stop(main);
});

/** The request run alone through `generate` (greedy, what `mft generate --temperature 0` runs). */
async function alone(prompt: string, maxTokens: number, adapter: string | null): Promise<string> {
  const promptIds = tok.encode(prompt);
  const ids = await generate(model, tok, promptIds, {
    maxNewTokens: maxTokens,
    temperature: 0,
    topP: 1,
    seed: 0,
    lora: adapter === null ? undefined : loras.get(adapter),
  });
  const all = tok.decode([...promptIds, ...ids], { skipSpecialTokens: true });
  return all.slice(tok.decode(promptIds, { skipSpecialTokens: true }).length);
}

describe('mft serve (openai client)', () => {
  test('GET /v1/models lists the base and each adapter; /health answers', async () => {
    const models = await main.client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tinystories-260k', 'story-a', 'story-b']);
    const health = (await (await fetch(`${main.url}/health`)).json()) as { status: string };
    expect(health.status).toBe('ok');
  });

  test("greedy completion: run.c's story, equal to generate, with usage counts", async () => {
    const r = await main.client.completions.create({
      model: 'tinystories-260k',
      prompt: 'Once upon a time',
      max_tokens: 30,
      temperature: 0,
    });
    // run.c's greedy story starts with the prompt's 4 ids; the 30 after them are the completion.
    const skip = { skipSpecialTokens: true };
    const story = tok
      .decode([1, ...runC.slice(0, 34)], skip)
      .slice(tok.decode([1, ...runC.slice(0, 4)], skip).length);
    expect(r.choices[0]?.text).toBe(story);
    expect(r.choices[0]?.text).toBe(await alone('Once upon a time', 30, null));
    expect(r.choices[0]?.finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: 5, completion_tokens: 30, total_tokens: 35 });
  });

  test('16 concurrent streamed requests (base and two adapters, batched) each equal their run alone', async () => {
    const before = tf.memory().numTensors;
    const steps0 = { ...main.engine.stats };
    const starts = [
      'Once upon a time',
      'Lily and Ben',
      'The cat',
      'One day, a big',
      'Tom had a red ball',
      'The sun',
    ];
    const jobs = Array.from({ length: 16 }, (_, k) => ({
      prompt: starts[k % starts.length] as string,
      maxTokens: 12 + ((k * 7) % 20),
      adapter: [null, 'story-a', 'story-b'][k % 3] as string | null,
    }));
    const streamed = await Promise.all(
      jobs.map(async (j) => {
        const stream = await main.client.completions.create({
          model: j.adapter ?? 'tinystories-260k',
          prompt: j.prompt,
          max_tokens: j.maxTokens,
          temperature: 0,
          stream: true,
        });
        let text = '';
        let finish: string | null = null;
        for await (const chunk of stream) {
          text += chunk.choices[0]?.text ?? '';
          finish = chunk.choices[0]?.finish_reason ?? finish;
        }
        return { text, finish };
      }),
    );
    const stats = main.engine.stats;
    // Batched: on average more than one request per decode step.
    expect((stats.rows - steps0.rows) / (stats.steps - steps0.steps)).toBeGreaterThan(2);
    for (const [k, j] of jobs.entries()) {
      expect(streamed[k]?.text, `request ${k}`).toBe(await alone(j.prompt, j.maxTokens, j.adapter));
    }
    // The adapters change the text (so the per-row LoRA terms were applied, not skipped).
    expect(await alone('The cat', 20, 'story-a')).not.toBe(await alone('The cat', 20, null));
    expect(await alone('The cat', 20, 'story-a')).not.toBe(await alone('The cat', 20, 'story-b'));
    expect(tf.memory().numTensors).toBe(before);
  });

  test('chat completion: the chat template, the reply equals generate on the same prompt', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
    const r = await main.client.chat.completions.create({
      model: 'story-a',
      messages,
      max_tokens: 16,
      temperature: 0,
      stop: ['.'],
    });
    const p = chatPrompt(tok, messages);
    const ids = await generate(model, tok, p.ids, {
      maxNewTokens: 16,
      temperature: 0,
      topP: 1,
      seed: 0,
      lora: loras.get('story-a'),
    });
    const full = tok
      .decode([...p.ids, ...ids], { skipSpecialTokens: true })
      .slice(tok.decode(p.ids, { skipSpecialTokens: true }).length);
    const cut = full.includes('.') ? full.slice(0, full.indexOf('.')) : full;
    expect(r.choices[0]?.message.content).toBe(cut);
    expect(r.choices[0]?.finish_reason).toBe(full.includes('.') ? 'stop' : 'length');
    expect(r.usage?.prompt_tokens).toBe(p.ids.length);
  });

  test('seeded sampling replays', async () => {
    const ask = () =>
      main.client.completions.create({
        model: 'tinystories-260k',
        prompt: 'The dog',
        max_tokens: 20,
        temperature: 0.9,
        top_p: 0.9,
        seed: 42,
      });
    expect((await ask()).choices[0]?.text).toBe((await ask()).choices[0]?.text);
  });

  test('bad requests: 400 naming the field, 404 for an unknown model, 413 for a large body', async () => {
    const bad = async (body: Record<string, unknown>) => {
      try {
        await main.client.completions.create(body as never);
      } catch (e) {
        return e as InstanceType<typeof OpenAI.APIError>;
      }
      throw new Error('expected an error');
    };
    const t = await bad({ model: 'tinystories-260k', prompt: 'x', temperature: -1 });
    expect(t.status).toBe(400);
    expect(t.param).toBe('temperature');
    expect(t.message).toContain('temperature: must be >= 0');
    const m = await bad({ model: 'tinystories-260k', prompt: 'x', max_tokens: 100_000 });
    expect(m.status).toBe(400);
    expect(m.param).toBe('max_tokens');
    const n = await bad({ model: 'tinystories-260k', prompt: 'x', n: 2 });
    expect(n.param).toBe('n');
    const u = await bad({ model: 'nope', prompt: 'x' });
    expect(u.status).toBe(404);
    const p = await bad({ model: 'tinystories-260k', prompt: 7 });
    expect(p.param).toBe('prompt');

    const raw = await fetch(`${main.url}/v1/completions`, { method: 'POST', body: '{"model": ' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { message: string } }).error.message).toContain('not valid JSON');
    const big = await fetch(`${main.url}/v1/completions`, { method: 'POST', body: 'x'.repeat(10_000) });
    expect(big.status).toBe(413);
    const none = await fetch(`${main.url}/v2/nothing`);
    expect(none.status).toBe(404);
    // still serving
    expect((await fetch(`${main.url}/health`)).status).toBe(200);
  });

  test('a full queue answers 429; a request over the timeout answers 504', async () => {
    const small = await start({ maxBatch: 1, maxQueue: 1, timeoutMs: 60_000 });
    try {
      const body = (max: number) =>
        fetch(`${small.url}/v1/completions`, {
          method: 'POST',
          body: JSON.stringify({
            model: 'tinystories-260k',
            prompt: 'Once',
            max_tokens: max,
            temperature: 0,
          }),
        });
      const first = body(200);
      await new Promise((r) => setTimeout(r, 200)); // the first is decoding
      const rs = await Promise.all([body(5), body(5), first]);
      expect(rs.map((r) => r.status).sort()).toEqual([200, 200, 429]);
    } finally {
      await stop(small);
    }
    const slow = await start({ timeoutMs: 100 });
    try {
      const r = await fetch(`${slow.url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'tinystories-260k', prompt: 'Once', max_tokens: 400, temperature: 0 }),
      });
      expect(r.status).toBe(504);
    } finally {
      await stop(slow);
    }
  });
});

test('mft serve: SIGTERM lets the in-flight request finish, then exits 0', async () => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(REPO_ROOT, 'test/cli/cli-entry.ts'),
      'serve',
      '--model',
      MODEL,
      '--port',
      '0',
      '--backend',
      'wasm',
    ],
    { cwd: REPO_ROOT },
  );
  let stderr = '';
  const url = await new Promise<string>((ok, bad) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /on (http:\/\/[\d.]+:\d+)/.exec(stderr);
      if (m) ok(m[1] as string);
    });
    child.on('exit', () => bad(new Error(stderr)));
  });
  const pending = fetch(`${url}/v1/completions`, {
    method: 'POST',
    body: JSON.stringify({
      model: 'tinystories-260k',
      prompt: 'Once upon a time',
      max_tokens: 60,
      temperature: 0,
    }),
  });
  await new Promise((r) => setTimeout(r, 300));
  const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
  child.kill('SIGTERM');
  const r = await pending;
  expect(r.status).toBe(200);
  const body = (await r.json()) as { usage: { completion_tokens: number } };
  expect(body.usage.completion_tokens).toBe(60);
  expect(await exited).toBe(0);
}, 180_000);
