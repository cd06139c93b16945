/**
 * Chat conversations (`messages: [{role, content}]`) rendered with the tokenizer's Jinja
 * `chat_template` through `@huggingface/jinja`, split into text segments that carry loss (assistant
 * turns) or not.
 *
 * That library drops `{% generation %}` markers, so the assistant spans are found by rendering
 * incrementally: for assistant message i,
 *   start = render(messages[:i], add_generation_prompt=true)    (ends where the reply begins)
 *   end   = render(messages[:i+1])                              (ends after the reply and its end-of-turn)
 * and the span [len(start), len(end)) of the whole rendering is trained. Each rendering must be a
 * prefix of the next (a template that rewrites earlier turns, e.g. one that drops past reasoning,
 * cannot be masked this way: such a record is an error). When the generation prompt is not a prefix
 * of the reply (templates that render the reply header differently), the span starts after
 * render(messages[:i]) instead, so the reply header is trained as well.
 */
import { Template } from '@huggingface/jinja';
import { RecordError } from '../record-error.js';
import type { TextSegment } from '../types.js';

/**
 * The template used when the tokenizer has none: ChatML, as Qwen2 and SmolLM2 use it.
 * `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n` as the
 * generation prompt. With a tokenizer that lacks these special tokens they are plain text.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Check a `messages` value and return it typed; `column` names the field in errors. */
export function parseMessages(column: string, value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) {
    throw new RecordError(
      `${column}: expected a list of {role, content} messages, got ${value === null ? 'null' : typeof value}`,
    );
  }
  if (value.length === 0) throw new RecordError(`${column}: empty conversation`);
  return value.map((m, i) => {
    const at = `${column}[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw new RecordError(`${at}: expected an object {role, content}`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string')
      throw new RecordError(`${at}.role: expected a string, got ${JSON.stringify(role)}`);
    if (!(CHAT_ROLES as readonly string[]).includes(role)) {
      throw new RecordError(`${at}.role: unknown role "${role}"`, `use one of ${CHAT_ROLES.join(', ')}`);
    }
    if (typeof content !== 'string') {
      throw new RecordError(
        `${at}.content: expected a string, got ${content === undefined ? 'nothing' : JSON.stringify(content)}`,
      );
    }
    if (role === 'assistant' && content.trim() === '') throw new RecordError(`${at}.content: empty text`);
    return { role: role as ChatRole, content };
  });
}

/** Renders conversations with one chat template and the tokenizer's special token strings. */
export class ChatRenderer {
  private readonly template: Template;

  /**
   * @param template the Jinja chat template (null: `DEFAULT_CHAT_TEMPLATE`)
   * @param specialTokens `bos_token` / `eos_token` strings the template may print
   */
  constructor(
    template: string | null,
    private readonly specialTokens: { bos_token: string; eos_token: string },
  ) {
    this.template = new Template(template ?? DEFAULT_CHAT_TEMPLATE);
  }

  /** The rendered text of `messages`. */
  render(messages: ChatMessage[], addGenerationPrompt = false): string {
    try {
      return this.template.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        ...this.specialTokens,
      });
    } catch (e) {
      throw new RecordError(`chat template: ${(e as Error).message}`);
    }
  }

  /**
   * The rendered conversation cut into segments; assistant replies are trained unless `trainAll`
   * says every token is.
   */
  segments(messages: ChatMessage[], trainAll: boolean): TextSegment[] {
    const full = this.render(messages);
    if (trainAll) return [{ text: full, trained: true }];
    const notPrefix = (i: number) =>
      new RecordError(
        `messages: the chat template does not render this conversation incrementally (the rendering of messages 0..${i} is not the start of the rendering of the whole), so the assistant turns cannot be located`,
        'use a template that appends each turn, or train_on: all',
      );
    const spans: [number, number][] = [];
    messages.forEach((m, i) => {
      if (m.role !== 'assistant') return;
      const end = this.render(messages.slice(0, i + 1));
      if (!full.startsWith(end)) throw notPrefix(i);
      let start = this.render(messages.slice(0, i), true);
      if (!end.startsWith(start)) {
        start = this.render(messages.slice(0, i));
        if (!end.startsWith(start)) throw notPrefix(i - 1);
      }
      spans.push([start.length, end.length]);
    });
    if (spans.length === 0) {
      throw new RecordError(
        'messages: no assistant message to train on',
        'add an assistant reply, or train_on: all',
      );
    }
    const out: TextSegment[] = [];
    let at = 0;
    for (const [a, b] of spans) {
      if (a > at) out.push({ text: full.slice(at, a), trained: false });
      if (b > a) out.push({ text: full.slice(a, b), trained: true });
      at = b;
    }
    if (at < full.length) out.push({ text: full.slice(at), trained: false });
    return out;
  }
}
