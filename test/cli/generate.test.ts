/**
 * `mft generate` end to end. THE check: the embedded stories260K model, greedy, no prompt, prints
 * exactly the text of llama2.c's run.c (test/fixtures/stories260K/).
 */
import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, test } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { saveAdapter } from '../../src/lora/peft-adapter.js';
import { generate, loadModel } from '../../src/model/index.js';
import { modelLoraOf, randomAdapter } from '../helpers/random-adapter.js';
import { fileTempDir, removeTempDirs } from '../helpers/tmp-dir.js';
import { writeTinyModel } from '../model/tiny-model.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const MODEL = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
const FIX = join(REPO_ROOT, 'test/fixtures/stories260K');
const expectedIds = readFileSync(join(FIX, 'greedy_t0_n256_noprompt.ids.txt'), 'utf8')
  .trim()
  .split(/\s+/)
  .map(Number);

const tmp = fileTempDir('generate');

/** `mft generate --model model`, greedy, after run.c's first words. */
const greedyAfterOnce = (model: string, ...flags: string[]) =>
  runCli(['generate', '--model', model, '--prompt', 'Once upon a time', '--temperature', '0', ...flags]);
afterAll(removeTempDirs);

describe('mft generate', () => {
  test('stories260K greedy without a prompt prints exactly run.c output', () => {
    const r = runCli(['generate', '--model', MODEL, '--max-new-tokens', '256', '--temperature', '0']);
    expect(r.stderr).toMatch(/256 tokens in/);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(FIX, 'greedy_t0_n256_noprompt.txt'), 'utf8'));
  });

  test('--max-new-tokens past max_position_embeddings stops there and says so', () => {
    // the same model with a 16-position context: the 5-token prompt leaves room for 11 tokens
    const short = join(tmp, 'short-context');
    cpSync(MODEL, short, { recursive: true });
    const config = JSON.parse(readFileSync(join(short, 'config.json'), 'utf8'));
    writeFileSync(join(short, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 16 }));
    const r = greedyAfterOnce(short, '--json', '--max-new-tokens', '100000');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ids: number[] };
    expect(out.ids).toEqual(expectedIds.slice(4, 15));
    expect(r.stderr).toContain(
      "mft: stopped at the model's max_position_embeddings (16 positions: a 5-token prompt + 11 generated), before --max-new-tokens 100000",
    );
    const within = greedyAfterOnce(short, '--json', '--max-new-tokens', '11');
    expect(within.stderr).not.toContain('stopped at');
  }, 60_000);

  test('--json with a prompt: prompt ids, generated ids and their text only', () => {
    const r = greedyAfterOnce(MODEL, '--max-new-tokens', '20', '--json');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { prompt_ids: number[]; ids: number[]; text: string };
    // run.c's greedy story starts with "Once upon a time" (ids 403 407 261 378) and continues alike.
    expect(out.prompt_ids).toEqual([1, 403, 407, 261, 378]);
    expect(out.ids).toEqual(expectedIds.slice(4, 24));
    expect(out.text.startsWith(', there was a little girl named Lily.')).toBe(true);
  });

  test('--adapter rebuilds the NF4 base recorded in mft_training.json and applies the adapter', async () => {
    await initBackend('wasm');
    const base = await loadModel(MODEL, { quantization: 'nf4', doubleQuant: true });
    const adapter = randomAdapter(base, { seed: 3, bScale: 0.2, baseModel: MODEL });
    const lora = modelLoraOf(adapter, base.layers.length);
    const dir = join(tmp, 'run');
    saveAdapter(join(dir, 'adapter'), {
      ...adapter,
      training: {
        base_model: MODEL,
        config_hash: base.configHash,
        quantization: 'nf4',
        double_quant: true,
        precision: 'auto',
      },
    });
    const greedy20 = { maxNewTokens: 20, temperature: 0, topP: 1, seed: 0, lora };
    const expected = await generate(base, null, [1], greedy20);
    // The adapter changes the story, and so does the NF4 storage under it.
    const unquantized = await generate(await loadModel(MODEL), null, [1], greedy20);
    for (const l of lora) for (const p of Object.values(l)) tf.dispose([p.A, p.B]);
    expect(unquantized).not.toEqual(expectedIds.slice(0, 20));
    expect(expected).not.toEqual(unquantized);

    // A run directory works too; --model comes from mft_training.json.
    const r = runCli([
      'generate',
      '--adapter',
      dir,
      '--max-new-tokens',
      '20',
      '--temperature',
      '0',
      '--json',
    ]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { ids: number[] }).ids).toEqual(expected);
  });

  test('user mistakes exit 2 with the place and the fix', () => {
    const both = runCli(['generate', '--model', MODEL, '--prompt', 'a', '--file', 'b.txt', '--top-p', '0']);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/--top-p: expected a number in \(0, 1\], got "0"/);
    const missing = runCli(['generate', '--model', join(tmp, 'nowhere')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/config\.json: no config\.json: not a Hugging Face model directory/);
  });
});

describe('mft generate --chat / --messages', () => {
  // A random model with the TinyLlama vocabulary, and TinyLlama's tokenizer and Zephyr chat template.
  const chatModel = () => {
    const m = writeTinyModel({ vocab: 32000, hidden: 8, intermediate: 8, heads: 2, kvHeads: 1, layers: 1 });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      copyFileSync(join(REPO_ROOT, 'test/fixtures/tokenizers/tinyllama', f), join(m.dir, f));
    }
    return m.dir;
  };
  const rust = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');

  test('--chat renders the template around the prompt; --messages gives the same for the same turn', async () => {
    const dir = chatModel();
    const args = ['generate', '--model', dir, '--max-new-tokens', '4', '--temperature', '0', '--json'];
    const chat = runCli([...args, '--chat', '--prompt', 'Name a colour.']);
    expect(chat.stderr).toMatch(/tokens in/);
    expect(chat.status).toBe(0);
    const ref = rust.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    const want = (
      await ref.encode('<|user|>\nName a colour.</s>\n<|assistant|>\n', null, { addSpecialTokens: false })
    ).getIds();
    expect(JSON.parse(chat.stdout).prompt_ids).toEqual(want);

    const file = join(tmp, 'messages.json');
    writeFileSync(file, JSON.stringify([{ role: 'user', content: 'Name a colour.' }]));
    const fromFile = runCli([...args, '--messages', file]);
    expect(fromFile.status).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toEqual(JSON.parse(chat.stdout));
  });

  test('a bad --messages file is one line naming the file and the message', () => {
    const file = join(tmp, 'bad-messages.json');
    writeFileSync(file, JSON.stringify({ messages: [{ role: 'robot', content: 'x' }] }));
    const r = runCli(['generate', '--model', MODEL, '--messages', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('messages[0].role: unknown role "robot"');
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
  });

  test('--stop ends the text before the stop string', () => {
    const r = greedyAfterOnce(MODEL, '--max-new-tokens', '40', '--stop', ' named', '--json');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { ids: number[]; text: string };
    // run.c's greedy story: "Once upon a time, there was a little girl named Lily."
    expect(out.text).toBe(', there was a little girl');
    expect(out.ids).toEqual(expectedIds.slice(4, 4 + out.ids.length));
    expect(out.ids.length).toBeLessThan(40);
  });
});
