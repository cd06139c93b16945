import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { type ChatMessage, ChatRenderer } from '../../../src/data/format/chat-template.js';
import { tokenizeRecord } from '../../../src/data/tokenize.js';
import { loadTokenizer, type MftTokenizer } from '../../../src/tokenizer/index.js';
import { charTokenizer } from '../char-tokenizer.js';

const TOKENIZERS = join(import.meta.dirname, '../../fixtures/tokenizers');

const conversation: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Again' },
  { role: 'assistant', content: 'Hello again.' },
];

function rendererFor(tok: MftTokenizer): ChatRenderer {
  const text = (id: number | null) => (id === null ? '' : tok.decode([id], { skipSpecialTokens: false }));
  return new ChatRenderer(tok.chatTemplate, { bos_token: text(tok.bosId), eos_token: text(tok.eosId) });
}

/** Runs of decoded text with their loss flag (a token carries loss when its label is not -100). */
function runs(tok: MftTokenizer, ids: Int32Array, labels: Int32Array): [boolean, string][] {
  const out: [boolean, number[]][] = [];
  for (let i = 0; i < ids.length; i++) {
    const trained = labels[i] !== -100;
    const last = out[out.length - 1];
    if (last && last[0] === trained) last[1].push(ids[i]!);
    else out.push([trained, [ids[i]!]]);
  }
  return out.map(([t, run]) => [t, tok.decode(run, { skipSpecialTokens: false })]);
}

describe('SmolLM2 tokenizer (no chat_template: the default ChatML template)', () => {
  let tok: MftTokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(join(TOKENIZERS, 'smollm2-135m-instruct'));
  });

  test('renders the exact ChatML text and masks all but the assistant replies', () => {
    expect(tok.chatTemplate).toBeNull();
    const r = rendererFor(tok);
    const full =
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n' +
      '<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\nHello again.<|im_end|>\n';
    expect(r.render(conversation)).toBe(full);
    expect(r.render(conversation.slice(0, 2), true)).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    const segments = r.segments(conversation, false);
    expect(segments.filter((s) => s.trained).map((s) => s.text)).toEqual([
      'Hello!<|im_end|>\n',
      'Hello again.<|im_end|>\n',
    ]);
    expect(segments.map((s) => s.text).join('')).toBe(full);

    const sample = tokenizeRecord(
      tok,
      { kind: 'segments', segments, chat: true },
      { addEos: true, fim: null },
    );
    // The ids are the tokenization of the whole conversation (no BOS: SmolLM2 adds none; no extra
    // EOS: the conversation already ends with <|im_end|> = EOS, then a newline).
    expect(Array.from(sample.ids)).toEqual(tok.encode(full));
    expect(runs(tok, sample.ids, sample.labels)).toEqual([
      [
        false,
        '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
      ],
      [true, 'Hello!<|im_end|>\n'],
      [false, '<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n'],
      [true, 'Hello again.<|im_end|>\n'],
    ]);
  });
});

describe('TinyLlama tokenizer (its own Zephyr-style chat_template)', () => {
  let tok: MftTokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(join(TOKENIZERS, 'tinyllama'));
  });

  test('renders the exact text and masks the prompt turns, BOS from the post-processor', () => {
    const r = rendererFor(tok);
    const full =
      '<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nAgain</s>\n<|assistant|>\nHello again.</s>\n';
    expect(r.render(conversation)).toBe(full);
    const segments = r.segments(conversation, false);
    expect(segments).toEqual([
      { text: '<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n', trained: false },
      { text: 'Hello!</s>\n', trained: true },
      { text: '<|user|>\nAgain</s>\n<|assistant|>\n', trained: false },
      { text: 'Hello again.</s>\n', trained: true },
    ]);
    const sample = tokenizeRecord(
      tok,
      { kind: 'segments', segments, chat: true },
      { addEos: true, fim: null },
    );
    expect(Array.from(sample.ids)).toEqual(tok.encode(full));
    expect(sample.ids[0]).toBe(1); // <s>
    const trained = runs(tok, sample.ids, sample.labels)
      .filter(([t]) => t)
      .map(([, s]) => s);
    expect(trained).toEqual(['Hello!</s>\n', 'Hello again.</s>\n']);
    // The reply starts with the token "Hello", as in the whole conversation; tokenized alone it
    // would start with SentencePiece's "▁Hello".
    const firstTrained = sample.labels.findIndex((l) => l !== -100);
    expect(sample.ids[firstTrained]).toBe(tok.tokenToId('Hello'));
    expect(tok.encode('Hello!', { addSpecialTokens: false })[0]).toBe(tok.tokenToId('▁Hello'));
  });
});

describe('templates that cannot be masked', () => {
  test('a template that rewrites earlier turns is an error that says so', () => {
    const r = new ChatRenderer(
      '{% for m in messages %}{% if loop.last %}LAST:{% endif %}{{ m.content }}|{% endfor %}',
      {
        bos_token: '',
        eos_token: '',
      },
    );
    expect(() =>
      r.segments(
        [
          { role: 'user', content: 'a' },
          { role: 'assistant', content: 'b' },
          { role: 'user', content: 'c' },
        ],
        false,
      ),
    ).toThrow(/does not render this conversation incrementally/);
  });

  test('a token spanning the end of a turn is an error for chat records', () => {
    // A tokenizer with one token for "\nHe": it straddles "<|im_start|>assistant\n" | "Hello".
    const tok = charTokenizer({ merges: ['\nHe'] });
    const r = rendererFor(tok);
    const segments = r.segments(
      [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: 'Hello' },
      ],
      false,
    );
    expect(() =>
      tokenizeRecord(tok, { kind: 'segments', segments, chat: true }, { addEos: true, fim: null }),
    ).toThrow(/tokenizing the conversation turn by turn does not give the tokens of the whole conversation/);
  });

  test('a template error is reported as a record error', () => {
    const r = new ChatRenderer("{{ raise_exception('Conversation roles must alternate') }}", {
      bos_token: '',
      eos_token: '',
    });
    expect(() => r.render([{ role: 'user', content: 'a' }])).toThrow(
      /chat template: .*Conversation roles must alternate/,
    );
  });
});
