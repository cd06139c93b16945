/**
 * The request bodies of the OpenAI API that `mft serve` answers, checked with zod. A bad field is
 * an `ApiError` (400) naming it, e.g. `temperature: expected a number >= 0 and <= 2`. Fields of the
 * API that change the answer but that mft does not implement (n > 1, logprobs, tools, ...) are
 * refused by name rather than ignored; fields that only describe the caller (user, metadata) pass.
 */
import { z } from 'zod';
import { CHAT_ROLES, type ChatMessage } from '../data/format/chat-template.js';

/** An error answered as OpenAI's `{"error": {message, type, param, code}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = status === 429
      ? 'rate_limit_error'
      : status >= 500
        ? 'server_error'
        : 'invalid_request_error',
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();

/** Fields common to both endpoints. */
const sampling = {
  model: z.string(),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().min(0).nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  n: z.literal(1).nullish(),
  frequency_penalty: z.literal(0).nullish(),
  presence_penalty: z.literal(0).nullish(),
  logprobs: z.union([z.literal(false), z.null()]).optional(),
  user: z.string().nullish(),
};

const message = z.object({
  role: z.enum(CHAT_ROLES),
  content: z.union([
    z.string(),
    // The content-parts form, text parts only.
    z.array(z.object({ type: z.literal('text'), text: z.string() })),
  ]),
  name: z.string().optional(),
});

const chatBody = z.object({
  ...sampling,
  messages: z.array(message).min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  tools: z.array(z.unknown()).max(0).nullish(),
  response_format: z.object({ type: z.literal('text') }).nullish(),
});

const completionBody = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1)]),
  echo: z.literal(false).nullish(),
  logprobs: z.null().optional(),
  suffix: z.null().optional(),
});

/** What a request asks for, in mft's terms. */
export interface ParsedRequest {
  model: string;
  /** Chat messages, or the completion prompt. */
  messages: ChatMessage[] | null;
  prompt: string | null;
  maxTokens: number | null;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  repetitionPenalty: number;
}

/** Parse a JSON body; `kind` picks the endpoint's schema. */
export function parseRequest(kind: 'chat' | 'completion', body: unknown): ParsedRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'the request body must be a JSON object');
  }
  const r = (kind === 'chat' ? chatBody : completionBody).safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0] as z.core.$ZodIssue;
    const param = issue.path
      .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
      .join('');
    throw new ApiError(400, `${param || 'body'}: ${describe(issue)}`, param || null);
  }
  const d = r.data as z.infer<typeof chatBody> & z.infer<typeof completionBody>;
  const stops = d.stop == null ? [] : typeof d.stop === 'string' ? [d.stop] : d.stop;
  return {
    model: d.model,
    messages:
      kind === 'chat'
        ? d.messages.map((m) => ({
            role: m.role,
            content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
          }))
        : null,
    prompt:
      kind === 'completion' ? (typeof d.prompt === 'string' ? d.prompt : (d.prompt[0] as string)) : null,
    maxTokens: d.max_completion_tokens ?? d.max_tokens ?? null,
    // OpenAI's defaults: temperature 1, top_p 1.
    temperature: d.temperature ?? 1,
    topP: d.top_p ?? 1,
    seed: d.seed ?? 0,
    stop: stops,
    stream: d.stream ?? false,
    includeUsage: d.stream_options?.include_usage ?? false,
    repetitionPenalty: d.repetition_penalty ?? 1,
  };
}

/** A zod issue as a short sentence. */
function describe(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'required' : `expected ${issue.expected}`;
    case 'invalid_value':
      return `must be ${issue.values.map((v) => JSON.stringify(v)).join(' or ')} (others are not supported)`;
    case 'too_small':
      return `must be ${issue.inclusive === false ? '>' : '>='} ${issue.minimum}${issue.origin === 'array' ? ' items' : ''}`;
    case 'too_big':
      return `must be ${issue.inclusive === false ? '<' : '<='} ${issue.maximum}${issue.origin === 'array' ? ' items' : ''}`;
    case 'invalid_union':
      return 'has the wrong type';
    default:
      return issue.message;
  }
}
