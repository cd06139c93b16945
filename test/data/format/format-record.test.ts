import { describe, expect, test } from 'vitest';
import { ChatRenderer } from '../../../src/data/format/chat-template.js';
import { type FormatContext, formatRecord } from '../../../src/data/format/format-record.js';
import type { DataRecipe, RecipeFormat } from '../../../src/data/types.js';
import { plainRecipe } from '../../helpers/data-config.js';

function ctx(
  format: RecipeFormat,
  over: Partial<FormatContext> & { train_on?: DataRecipe['train_on'] } = {},
): FormatContext {
  return {
    recipe: plainRecipe(format, over.train_on),
    fields: {},
    chat: format === 'instruct' ? new ChatRenderer(null, { bos_token: '<s>', eos_token: '</s>' }) : null,
    fimRate: 0,
    seed: 1,
    ...over,
  };
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

describe('formatRecord by recipe', () => {
  test('text: one trained segment', () => {
    expect(formatRecord({ text: 'hello' }, ctx('text'), 0)).toEqual({
      kind: 'segments',
      segments: [{ text: 'hello', trained: true }],
      chat: false,
    });
  });

  test('completion: the prompt is not trained, the completion is, verbatim', () => {
    expect(formatRecord({ prompt: 'Q: 1+1?\nA:', completion: ' 2' }, ctx('completion'), 0)).toEqual({
      kind: 'segments',
      segments: [
        { text: 'Q: 1+1?\nA:', trained: false },
        { text: ' 2', trained: true },
      ],
      chat: false,
    });
    // train_on: all trains the prompt too.
    const all = formatRecord({ prompt: 'p', completion: 'c' }, ctx('completion', { train_on: 'all' }), 0);
    expect(all.kind === 'segments' && all.segments.every((s) => s.trained)).toBe(true);
  });

  test('alpaca: the Stanford Alpaca prompt with and without input', () => {
    const withInput = formatRecord({ instruction: 'Add.', input: '1 2', output: '3' }, ctx('alpaca'), 0);
    expect(withInput).toEqual({
      kind: 'segments',
      segments: [
        {
          text:
            'Below is an instruction that describes a task, paired with an input that provides further context. ' +
            'Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n1 2\n\n### Response:\n',
          trained: false,
        },
        { text: '3', trained: true },
      ],
      chat: false,
    });
    for (const input of [undefined, null, '']) {
      const r = formatRecord({ instruction: 'Say hi.', input, output: 'hi' }, ctx('alpaca'), 0);
      expect(r.kind === 'segments' && r.segments[0]!.text).toBe(
        'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
          '### Instruction:\nSay hi.\n\n### Response:\n',
      );
    }
  });

  test('field names are mapped by the task', () => {
    const c = ctx('completion', { fields: { prompt: 'instruction', completion: 'cot_answer' } });
    const r = formatRecord({ instruction: 'I', cot_answer: 'A' }, c, 0);
    expect(r.kind === 'segments' && r.segments.map((s) => s.text)).toEqual(['I', 'A']);
    expect(message(() => formatRecord({ prompt: 'I', completion: 'A' }, c, 0))).toBe(
      'instruction: missing field (the record has: prompt, completion)',
    );
  });

  test('code_completion reads text, or content when there is no text', () => {
    const a = formatRecord({ text: 'x = 1' }, ctx('code_completion'), 0);
    const b = formatRecord({ content: 'y = 2', path: 'a.py' }, ctx('code_completion'), 0);
    expect(a.kind === 'segments' && a.segments[0]!.text).toBe('x = 1');
    expect(b.kind === 'segments' && b.segments[0]!.text).toBe('y = 2');
  });

  test('instruct: rendered chat segments with the assistant reply trained', () => {
    const r = formatRecord(
      {
        messages: [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello' },
        ],
      },
      ctx('instruct'),
      0,
    );
    expect(r).toEqual({
      kind: 'segments',
      segments: [
        { text: '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', trained: false },
        { text: 'Hello<|im_end|>\n', trained: true },
      ],
      chat: true,
    });
  });

  test('instruct: one turn from system / user / assistant columns', () => {
    const r = formatRecord({ system: 'Be brief.', user: 'Hi', assistant: 'Hello' }, ctx('instruct'), 0);
    expect(r.kind === 'segments' && r.segments).toEqual([
      {
        text: '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
        trained: false,
      },
      { text: 'Hello<|im_end|>\n', trained: true },
    ]);
    const noSystem = formatRecord({ user: 'Hi', assistant: 'Hello' }, ctx('instruct'), 0);
    expect(noSystem.kind === 'segments' && noSystem.segments[0]!.text).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(message(() => formatRecord({ user: 'Hi' }, ctx('instruct'), 0))).toBe(
      'assistant: missing field (the record has: user)',
    );
  });

  test('pre-tokenized records are used verbatim under any recipe', () => {
    expect(formatRecord({ input_ids: [5, 6, 7] }, ctx('instruct'), 0)).toEqual({
      kind: 'tokens',
      inputIds: [5, 6, 7],
      labels: null,
    });
    expect(formatRecord({ input_ids: [5, 6, 7], labels: [-100, 6, 7] }, ctx('text'), 0)).toEqual({
      kind: 'tokens',
      inputIds: [5, 6, 7],
      labels: [-100, 6, 7],
    });
  });
});

describe('fill-in-the-middle', () => {
  const text = 'def add(a, b):\n    return a + b\n';

  test('cuts at fim_rate of records, deterministically by seed and record index', () => {
    const c = ctx('code_completion', { fimRate: 0.5, seed: 7 });
    let fim = 0;
    for (let i = 0; i < 2000; i++) {
      const r = formatRecord({ text }, c, i);
      if (r.kind === 'fim') {
        fim += 1;
        expect(r.prefix + r.middle + r.suffix).toBe(text);
      }
      expect(formatRecord({ text }, c, i)).toEqual(r);
    }
    // Binomial(2000, 0.5): mean 1000, sd 22.4; 5 sd either side.
    expect(fim).toBeGreaterThan(888);
    expect(fim).toBeLessThan(1112);
    const cuts = (seed: number) =>
      Array.from({ length: 50 }, (_, i) => JSON.stringify(formatRecord({ text }, { ...c, seed }, i)));
    expect(cuts(7)).toEqual(cuts(7));
    expect(cuts(8)).not.toEqual(cuts(7));
  });

  test('fim_rate 1 cuts every record, 0 none; never inside a surrogate pair', () => {
    const emoji = '😀😀😀😀😀😀😀😀';
    for (let i = 0; i < 200; i++) {
      const r = formatRecord({ text: emoji }, ctx('code_completion', { fimRate: 1 }), i);
      expect(r.kind).toBe('fim');
      if (r.kind === 'fim')
        for (const part of [r.prefix, r.middle, r.suffix]) expect(part.length % 2).toBe(0);
      expect(formatRecord({ text: emoji }, ctx('code_completion', { fimRate: 0 }), i).kind).toBe('segments');
    }
  });
});

describe('bad records name the field and what was expected', () => {
  test('missing field', () => {
    expect(message(() => formatRecord({ body: 'x' }, ctx('text'), 0))).toBe(
      'text: missing field (the record has: body)',
    );
  });
  test('wrong type', () => {
    expect(message(() => formatRecord({ text: 42 }, ctx('text'), 0))).toBe('text: expected a string, got 42');
    expect(message(() => formatRecord({ text: ['a'] }, ctx('text'), 0))).toBe(
      'text: expected a string, got an array',
    );
    expect(message(() => formatRecord({ text: null }, ctx('text'), 0))).toBe(
      'text: expected a string, got null',
    );
    expect(message(() => formatRecord({ prompt: 'p', completion: { a: 1 } }, ctx('completion'), 0))).toBe(
      'completion: expected a string, got an object',
    );
  });
  test('empty text', () => {
    expect(message(() => formatRecord({ text: '  \n' }, ctx('text'), 0))).toBe('text: empty text');
    expect(message(() => formatRecord({ prompt: 'p', completion: '' }, ctx('completion'), 0))).toBe(
      'completion: empty text',
    );
  });
  test('chat: unknown role, bad messages, no assistant turn', () => {
    const c = ctx('instruct');
    expect(
      message(() =>
        formatRecord(
          {
            messages: [
              { role: 'user', content: 'a' },
              { role: 'bot', content: 'b' },
            ],
          },
          c,
          0,
        ),
      ),
    ).toBe('messages[1].role: unknown role "bot"');
    expect(message(() => formatRecord({ messages: 'hi' }, c, 0))).toBe(
      'messages: expected a list of {role, content} messages, got string',
    );
    expect(message(() => formatRecord({ messages: [{ role: 'user' }] }, c, 0))).toBe(
      'messages[0].content: expected a string, got nothing',
    );
    expect(message(() => formatRecord({ messages: [{ role: 'user', content: 'a' }] }, c, 0))).toBe(
      'messages: no assistant message to train on',
    );
    expect(message(() => formatRecord({ turns: [] }, c, 0))).toBe(
      'messages: missing field (the record has: turns)',
    );
  });
  test('pre-tokenized: not integers, negative ids, labels of another length', () => {
    expect(message(() => formatRecord({ input_ids: [1, 'a'] }, ctx('text'), 0))).toBe(
      'input_ids[1]: expected a token id, got "a"',
    );
    expect(message(() => formatRecord({ input_ids: [1, -100] }, ctx('text'), 0))).toBe(
      'input_ids[1]: expected a token id, got -100',
    );
    expect(message(() => formatRecord({ input_ids: [1, 2], labels: [1] }, ctx('text'), 0))).toBe(
      'labels: 1 labels for 2 input_ids',
    );
  });
});
