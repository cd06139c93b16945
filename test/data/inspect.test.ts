import { join } from 'node:path';
import { expect, test } from 'vitest';
import { renderSample } from '../../src/data/inspect.js';
import { tokenizeRecord } from '../../src/data/tokenize.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { charTokenizer } from './char-tokenizer.js';

const prompt = {
  kind: 'segments' as const,
  segments: [
    { text: 'Q: 1+1?\nA:', trained: false },
    { text: ' 2', trained: true },
  ],
  chat: false,
};

test('tokens without loss are bracketed, or grey on a colour terminal', () => {
  const tok = charTokenizer();
  const sample = tokenizeRecord(tok, prompt, { addEos: true, fim: null });
  expect(renderSample(tok, sample, { color: false })).toBe('⟦<s>Q: 1+1?\nA:⟧ 2</s>');
  expect(renderSample(tok, sample, { color: true })).toBe('\x1b[90m<s>Q: 1+1?\nA:\x1b[39m 2</s>');
  // The first token is never a target, even when its label is set.
  const all = tokenizeRecord(
    tok,
    { ...prompt, segments: [{ text: 'ab', trained: true }] },
    { addEos: false, fim: null },
  );
  expect(renderSample(tok, all, { color: false })).toBe('⟦<s>⟧ab');
});

test('a SentencePiece word after the mask keeps its leading space', async () => {
  const tok = await loadTokenizer(join(import.meta.dirname, '../fixtures/tokenizers/mistral-7b-v0.1'));
  const sample = tokenizeRecord(
    tok,
    {
      ...prompt,
      segments: [
        { text: 'Once upon a time', trained: false },
        { text: ' there was', trained: true },
      ],
    },
    { addEos: true, fim: null },
  );
  expect(renderSample(tok, sample, { color: false })).toBe('⟦<s> Once upon a time⟧ there was</s>');
});
