/**
 * The HTTP side of `mft serve` (node:http): OpenAI-compatible `POST /v1/chat/completions`,
 * `POST /v1/completions`, `GET /v1/models`, and `GET /health`. Streaming answers are server-sent
 * events (`data: {chunk}` lines, then `data: [DONE]`), as the OpenAI clients read them. Every
 * failure of a request is answered as OpenAI-style JSON; nothing a client sends ends the server.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chatPrompt } from '../data/format/chat-prompt.js';
import { RecordError } from '../data/record-error.js';
import { type MftTokenizer, TextStream } from '../tokenizer/index.js';
import { type Engine, type FinishReason, QueueFullError } from './engine.js';
import { ApiError, type ParsedRequest, parseRequest } from './requests.js';

export interface ServeLimits {
  /** Largest request body, bytes. */
  maxBodyBytes: number;
  /** Longest a request may take, ms; then it ends (504, or an error event when streaming). */
  timeoutMs: number;
  /** Context length of the model: prompt + max_tokens must fit. */
  contextLength: number;
}

export interface ServeOptions {
  engine: Engine;
  tokenizer: MftTokenizer;
  /** The base model's id (its folder name) and the adapters' names. */
  baseId: string;
  adapterIds: readonly string[];
  limits: ServeLimits;
}

/** The server, not yet listening. */
export function createApiServer(opts: ServeOptions): Server {
  const created = Math.floor(Date.now() / 1000);
  const server = createServer((req, res) => {
    handle(opts, created, req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error).message}`);
      if (!res.headersSent) sendJson(res, err.status, err.body());
      else res.end();
    });
  });
  // Clients keep connections alive between requests: Node's 5 s default closes idle ones so soon
  // that a client reusing one as it closes gets ECONNRESET.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
}

async function handle(
  opts: ServeOptions,
  created: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/health') {
    return sendJson(res, 200, { status: 'ok', ...opts.engine.load });
  }
  if (req.method === 'GET' && path === '/v1/models') {
    const ids = [opts.baseId, ...opts.adapterIds];
    return sendJson(res, 200, {
      object: 'list',
      data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'mft' })),
    });
  }
  const kind = path === '/v1/chat/completions' ? 'chat' : path === '/v1/completions' ? 'completion' : null;
  if (kind === null)
    throw new ApiError(404, `no route ${req.method} ${path}`, null, 'invalid_request_error', 'not_found');
  if (req.method !== 'POST') throw new ApiError(405, `${path} takes POST`);
  const body = await readJson(req, opts.limits.maxBodyBytes);
  const parsed = parseRequest(kind, body);
  await complete(opts, kind, parsed, res);
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ApiError(413, `the request body is over ${limit} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`);
  }
}

async function complete(
  opts: ServeOptions,
  kind: 'chat' | 'completion',
  p: ParsedRequest,
  res: ServerResponse,
): Promise<void> {
  const { tokenizer, limits } = opts;
  const adapter = p.model === opts.baseId ? null : opts.adapterIds.includes(p.model) ? p.model : undefined;
  if (adapter === undefined) {
    throw new ApiError(
      404,
      `model: no model ${JSON.stringify(p.model)} (GET /v1/models lists them)`,
      'model',
      'invalid_request_error',
      'model_not_found',
    );
  }
  let promptIds: number[];
  let stopIds: number[] = [];
  const stops = [...p.stop];
  if (p.messages) {
    try {
      const chat = chatPrompt(tokenizer, p.messages);
      promptIds = chat.ids;
      stopIds = chat.stopIds;
      stops.push(...chat.stopStrings);
    } catch (e) {
      if (e instanceof RecordError) throw new ApiError(400, `messages: ${e.message}`, 'messages');
      throw e;
    }
  } else {
    promptIds = tokenizer.encode(p.prompt ?? '');
  }
  if (promptIds.length === 0) throw new ApiError(400, 'prompt: encodes to no tokens', 'prompt');
  const room = limits.contextLength - promptIds.length;
  if (room < 1) {
    throw new ApiError(
      400,
      `${p.messages ? 'messages' : 'prompt'}: ${promptIds.length} tokens leave no room in the context of ${limits.contextLength}`,
      p.messages ? 'messages' : 'prompt',
      'invalid_request_error',
      'context_length_exceeded',
    );
  }
  if (p.maxTokens !== null && p.maxTokens > room) {
    throw new ApiError(
      400,
      `max_tokens: ${p.maxTokens} exceeds the ${room} tokens left in the context of ${limits.contextLength} after a prompt of ${promptIds.length}`,
      'max_tokens',
      'invalid_request_error',
      'context_length_exceeded',
    );
  }
  const maxTokens = p.maxTokens ?? room;

  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const stream = new TextStream(
    (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
    promptIds,
    stops,
  );
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, limits.timeoutMs);
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(); // the client went away
  });

  const chunk = (text: string, finish: FinishReason | null, first = false) =>
    kind === 'chat'
      ? {
          id,
          object: 'chat.completion.chunk',
          created,
          model: p.model,
          choices: [
            {
              index: 0,
              delta: first ? { role: 'assistant', content: text } : finish ? {} : { content: text },
              finish_reason: finish,
              logprobs: null,
            },
          ],
        }
      : {
          id,
          object: 'text_completion',
          created,
          model: p.model,
          choices: [{ index: 0, text, finish_reason: finish, logprobs: null }],
        };
  const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);

  let started = false;
  const startStream = () => {
    if (started) return;
    started = true;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    if (kind === 'chat') send(chunk('', null, true));
  };
  if (p.stream) startStream();

  let result: Awaited<ReturnType<Engine['submit']>>;
  try {
    result = await opts.engine.submit({
      promptIds,
      maxTokens,
      temperature: p.temperature,
      topP: p.topP,
      seed: p.seed,
      adapter,
      stopIds,
      repetitionPenalty: p.repetitionPenalty,
      signal: abort.signal,
      onToken: (tokenId) => {
        const text = stream.push(tokenId);
        if (p.stream && text !== '') send(chunk(text, null));
        return stream.stop !== null;
      },
    });
  } catch (e) {
    clearTimeout(timer);
    const err =
      e instanceof QueueFullError
        ? new ApiError(429, 'the server is busy: its queue is full, retry later')
        : e;
    if (started && err instanceof ApiError) {
      send(err.body());
      res.end();
      return;
    }
    throw err;
  }
  clearTimeout(timer);
  const tail = stream.finish();
  if (timedOut) {
    const err = new ApiError(
      504,
      `the request took over ${limits.timeoutMs} ms and was stopped`,
      null,
      'timeout',
    );
    if (!started) throw err;
    send(err.body());
    res.end();
    return;
  }
  if (result.finishReason === 'aborted') return void res.end();
  const finish = result.finishReason;
  const usage = {
    prompt_tokens: promptIds.length,
    completion_tokens: result.ids.length,
    total_tokens: promptIds.length + result.ids.length,
  };
  if (p.stream) {
    if (tail !== '') send(chunk(tail, null));
    send(chunk('', finish));
    if (p.includeUsage) {
      const base = chunk('', finish) as Record<string, unknown>;
      send({ ...base, choices: [], usage });
    }
    res.end('data: [DONE]\n\n');
    return;
  }
  const text = stream.text;
  sendJson(
    res,
    200,
    kind === 'chat'
      ? {
          id,
          object: 'chat.completion',
          created,
          model: p.model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: text },
              finish_reason: finish,
              logprobs: null,
            },
          ],
          usage,
        }
      : {
          id,
          object: 'text_completion',
          created,
          model: p.model,
          choices: [{ index: 0, text, finish_reason: finish, logprobs: null }],
          usage,
        },
  );
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
