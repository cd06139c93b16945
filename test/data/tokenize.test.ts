import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { findFimTokens, tokenizeRecord, trainedTargets } from '../../src/data/tokenize.js';
import type { FormattedRecord } from '../../src/data/types.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { charIds, charTokenizer } from './char-tokenizer.js';

const M = -100;
const opts = { addEos: true, fim: null };

function segments(...parts: [string, boolean][]): FormattedRecord {
  return { kind: 'segments', segments: parts.map(([text, trained]) => ({ text, trained })), chat: false };
}

describe('tokenizeRecord', () => {
  test('text: BOS from the tokenizer, EOS appended and trained, labels = ids', () => {
    const tok = charTokenizer();
    const s = tokenizeRecord(tok, segments(['ab', true]), opts);
    expect(Array.from(s.ids)).toEqual([1, ...charIds('ab'), 2]);
    expect(Array.from(s.labels)).toEqual([1, ...charIds('ab'), 2]);
    const noEos = tokenizeRecord(tok, segments(['ab', true]), { ...opts, addEos: false });
    expect(Array.from(noEos.ids)).toEqual([1, ...charIds('ab')]);
    const noBos = tokenizeRecord(charTokenizer({ addsBos: false }), segments(['ab', true]), opts);
    expect(Array.from(noBos.ids)).toEqual([...charIds('ab'), 2]);
  });

  test('a tokenizer that appends EOS itself still gets exactly one EOS at the end', () => {
    const tok = charTokenizer({ addsEos: true });
    const s = tokenizeRecord(tok, segments(['Q', false], ['A', true]), opts);
    expect(Array.from(s.ids)).toEqual([1, ...charIds('QA'), 2]);
    expect(Array.from(s.labels)).toEqual([M, M, ...charIds('A'), 2]);
  });

  test('text that starts with the BOS token gets no second BOS', () => {
    const s = tokenizeRecord(charTokenizer(), segments(['<s>hi', true]), opts);
    expect(Array.from(s.ids)).toEqual([1, ...charIds('hi'), 2]);
  });

  test('completion: the prompt is masked, the boundary is exact', () => {
    const s = tokenizeRecord(charTokenizer(), segments(['Q: x?\nA:', false], [' y', true]), opts);
    expect(Array.from(s.ids)).toEqual([1, ...charIds('Q: x?\nA: y'), 2]);
    expect(Array.from(s.labels)).toEqual([M, ...charIds('Q: x?\nA:').map(() => M), ...charIds(' y'), 2]);
    expect(trainedTargets(s.labels)).toBe(3); // " ", "y", EOS
  });

  test('a token straddling the prompt/completion boundary: the parts are tokenized apart and concatenated', () => {
    // One token for ": y" spans "A:" | " y".
    const tok = charTokenizer({ merges: [': y'] });
    const whole = tok.encode('A: y');
    expect(whole).toEqual([1, 16 + 'A'.codePointAt(0)!, 16 + 0x110000]);
    const s = tokenizeRecord(tok, segments(['A:', false], [' y', true]), opts);
    expect(Array.from(s.ids)).toEqual([1, ...charIds('A:'), ...charIds(' y'), 2]);
    expect(Array.from(s.labels)).toEqual([M, M, M, ...charIds(' y'), 2]);
  });

  test('fill-in-the-middle: <PRE> prefix <SUF> suffix <MID> middle EOS, all trained', () => {
    const tok = charTokenizer({ fim: true });
    const fim = findFimTokens(tok)!;
    expect(fim).toEqual({ prefix: 3, middle: 4, suffix: 5 });
    const s = tokenizeRecord(
      tok,
      { kind: 'fim', prefix: 'ab', middle: 'c', suffix: 'de' },
      { addEos: true, fim },
    );
    const want = [1, 3, ...charIds('ab'), 5, ...charIds('de'), 4, ...charIds('c'), 2];
    expect(Array.from(s.ids)).toEqual(want);
    expect(Array.from(s.labels)).toEqual(want);
  });

  test('pre-tokenized: verbatim, no BOS or EOS, labels as given or the ids', () => {
    const tok = charTokenizer();
    const a = tokenizeRecord(tok, { kind: 'tokens', inputIds: [7, 2, 9], labels: null }, opts);
    expect(Array.from(a.ids)).toEqual([7, 2, 9]);
    expect(Array.from(a.labels)).toEqual([7, 2, 9]);
    const b = tokenizeRecord(tok, { kind: 'tokens', inputIds: [7, 8, 9], labels: [M, M, 9] }, opts);
    expect(Array.from(b.labels)).toEqual([M, M, 9]);
    expect(() =>
      tokenizeRecord(tok, { kind: 'tokens', inputIds: [7, tok.vocabSize], labels: null }, opts),
    ).toThrow(`input_ids[1]: id ${tok.vocabSize} is outside the vocabulary (0..${tok.vocabSize - 1})`);
  });

  test('empty text after merging is an error', () => {
    expect(() => tokenizeRecord(charTokenizer(), segments(['', false], ['', true]), opts)).toThrow(
      'empty text',
    );
  });
});

describe('with real tokenizers', () => {
  test('Mistral: BOS once, EOS id 2 appended; the completion keeps its in-context tokens', async () => {
    const tok = await loadTokenizer(join(import.meta.dirname, '../fixtures/tokenizers/mistral-7b-v0.1'));
    const s = tokenizeRecord(tok, segments(['Question: 2+2?\nAnswer:', false], ['yes', true]), opts);
    expect(Array.from(s.ids)).toEqual([...tok.encode('Question: 2+2?\nAnswer:yes'), 2]);
    const prompt = tok.encode('Question: 2+2?\nAnswer:');
    expect(Array.from(s.ids.subarray(0, prompt.length))).toEqual(prompt);
    expect(Array.from(s.labels.subarray(0, prompt.length))).toEqual(prompt.map(() => M));
    const completion = Array.from(s.ids.subarray(prompt.length));
    expect(tok.decode(completion)).toBe('yes</s>');
    // Tokenized alone, "yes" would become SentencePiece's "▁yes" (a space the data does not have).
    expect(tok.encode('yes', { addSpecialTokens: false })).not.toEqual(completion.slice(0, -1));
  });

  test('GPT-2 and SmolLM2 have no FIM tokens', async () => {
    for (const name of ['gpt2', 'smollm2-135m-instruct']) {
      const tok = await loadTokenizer(join(import.meta.dirname, '../fixtures/tokenizers', name));
      expect(findFimTokens(tok)).toBeNull();
    }
  });
});
