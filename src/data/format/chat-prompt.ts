/**
 * The prompt of a chat reply: the conversation rendered with the tokenizer's chat template and the
 * generation prompt (transformers' `apply_chat_template(..., add_generation_prompt=True)`, whose
 * tokens are encoded without adding special tokens: the template prints BOS itself when it wants
 * one), and where the reply ends: the template's end-of-turn.
 *
 * The end-of-turn is found by rendering a probe conversation and reading what the template writes
 * right after an assistant reply: a special token there (`<|im_end|>`, `</s>`, `<|eot_id|>`) is a
 * stop id; plain text there (a template without special tokens) is a stop string.
 */
import type { MftTokenizer } from '../../tokenizer/index.js';
import { type ChatMessage, ChatRenderer } from './chat-template.js';

export interface ChatPrompt {
  /** Token ids of the rendered conversation with the generation prompt. */
  ids: number[];
  /** Ids that end the reply (the template's end-of-turn token), not part of it. */
  stopIds: number[];
  /** Strings that end the reply (an end-of-turn written as plain text). */
  stopStrings: string[];
}

const PROBE_REPLY = 'mft-end-of-turn-probe';

/** The chat renderer of a tokenizer (its template, or ChatML when it has none). */
export function chatRenderer(tok: MftTokenizer): ChatRenderer {
  const text = (id: number | null) => (id === null ? '' : tok.decode([id]));
  return new ChatRenderer(tok.chatTemplate, { bos_token: text(tok.bosId), eos_token: text(tok.eosId) });
}

/**
 * Render `messages` for a reply and find its end-of-turn.
 * @throws RecordError when the template rejects the conversation
 * @example
 *   const p = chatPrompt(tok, [{ role: 'user', content: 'Hi' }]);
 *   generate(model, tok, p.ids, { ..., stopIds: p.stopIds });
 */
export function chatPrompt(tok: MftTokenizer, messages: ChatMessage[]): ChatPrompt {
  const renderer = chatRenderer(tok);
  const ids = tok.encode(renderer.render(messages, true), { addSpecialTokens: false });
  return { ids, ...endOfTurn(tok, renderer) };
}

/** What ends an assistant turn in this template (see the module comment). */
export function endOfTurn(tok: MftTokenizer, renderer: ChatRenderer): Omit<ChatPrompt, 'ids'> {
  let rendered: string;
  try {
    rendered = renderer.render([
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: PROBE_REPLY },
    ]);
  } catch {
    return { stopIds: [], stopStrings: [] }; // the template refuses the probe: EOS alone ends the reply
  }
  const at = rendered.lastIndexOf(PROBE_REPLY);
  const after = at < 0 ? '' : rendered.slice(at + PROBE_REPLY.length);
  if (after.trim() === '') return { stopIds: [], stopStrings: [] };
  const first = tok.encode(after.trimStart(), { addSpecialTokens: false })[0];
  const special =
    first !== undefined &&
    tok.decode([first], { skipSpecialTokens: true }) === '' &&
    tok.decode([first]) !== '';
  if (special) return { stopIds: [first], stopStrings: [] };
  return { stopIds: [], stopStrings: [(after.trim().split('\n')[0] as string).trim()] };
}
