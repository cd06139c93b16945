import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { chatPrompt } from '../../../src/data/format/chat-prompt.js';
import { loadTokenizer } from '../../../src/tokenizer/index.js';
import { REPO_ROOT } from '../../cli/run-cli.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp-dir.js';

const rust = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');
const FIX = join(REPO_ROOT, 'test/fixtures/tokenizers');
afterAll(removeTempDirs);

async function rustIds(dir: string, text: string): Promise<number[]> {
  const ref = rust.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
  return (await ref.encode(text, null, { addSpecialTokens: false })).getIds();
}

describe('chatPrompt', () => {
  test("TinyLlama's Zephyr template: the documented prompt, </s> ends the turn", async () => {
    const dir = join(FIX, 'tinyllama');
    const tok = await loadTokenizer(dir);
    const p = chatPrompt(tok, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Name a colour.' },
    ]);
    // The prompt format of the TinyLlama-1.1B-Chat model card, written out by hand.
    const expected = '<|system|>\nBe brief.</s>\n<|user|>\nName a colour.</s>\n<|assistant|>\n';
    expect(p.ids).toEqual(await rustIds(dir, expected));
    expect(p.stopIds).toEqual([2]);
    expect(p.stopStrings).toEqual([]);
  });

  test('ChatML (SmolLM2 tokenizer with a ChatML template): <|im_end|> ends the turn', async () => {
    const dir = makeTempDir('chatml');
    copyFileSync(join(FIX, 'smollm2-135m-instruct/tokenizer.json'), join(dir, 'tokenizer.json'));
    // The tokenizer has no tokenizer_config.json, so the default (ChatML) template applies.
    const tok = await loadTokenizer(dir);
    const p = chatPrompt(tok, [{ role: 'user', content: 'Hi' }]);
    expect(p.ids).toEqual(await rustIds(dir, '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'));
    const vocab = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as {
      added_tokens: { id: number; content: string }[];
    };
    const imEnd = vocab.added_tokens.find((t) => t.content === '<|im_end|>')?.id;
    expect(imEnd).toBeDefined();
    expect(p.stopIds).toEqual([imEnd]);
  });

  test('an end of turn written as plain text becomes a stop string', async () => {
    const dir = makeTempDir('plain-chat');
    copyFileSync(join(FIX, 'tinyllama/tokenizer.json'), join(dir, 'tokenizer.json'));
    const template =
      "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n### END\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: template }));
    const p = chatPrompt(await loadTokenizer(dir), [{ role: 'user', content: 'Hi' }]);
    expect(p.stopIds).toEqual([]);
    expect(p.stopStrings).toEqual(['### END']);
  });
});
