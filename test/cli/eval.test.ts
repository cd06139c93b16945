/**
 * `mft eval` end to end. Expected losses come from the llama-golden fixture (computed outside this
 * project; test/fixtures/llama-golden/README.md), line completions from llama2.c's greedy story
 * (test/fixtures/stories260K/), and the trained-adapter check from the trainer's own metrics.jsonl.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadTaskConfig } from '../../src/config/index.js';
import { type Progress, readMetrics, train } from '../../src/train/index.js';
import { SafetensorsFile } from '../../src/weights/index.js';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { runCli } from './run-cli.js';

const GOLDEN = 'test/fixtures/llama-golden';
const goldenJson = JSON.parse(readFileSync(`${GOLDEN}/golden.json`, 'utf8')) as {
  loss: number;
  lora_loss: number;
  packed_documents: number[];
};
const golden = SafetensorsFile.open(`${GOLDEN}/golden.safetensors`);
const story = readFileSync('test/fixtures/stories260K/greedy_t0_n256_noprompt.txt', 'utf8').split('\n');
const tmp = fileTempDir('eval-cli');

function jsonl(name: string, records: unknown[]): string {
  const path = join(tmp, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return path;
}

/** The golden batch `[2, 24]` as pre-tokenized records. */
function goldenTokens(): string {
  const ids = golden.read('input_ids').data as Int32Array;
  return jsonl(
    'golden.jsonl',
    [0, 1].map((b) => ({ input_ids: Array.from(ids.slice(b * 24, (b + 1) * 24)) })),
  );
}

describe('mft eval', () => {
  test('--compare --json on pre-tokenized data: lora_loss at the top, the golden loss under "base"', () => {
    const r = runCli([
      'eval',
      '--model',
      GOLDEN,
      '--adapter',
      `${GOLDEN}/adapter`,
      '--data',
      goldenTokens(),
      '--compare',
      '--json',
    ]);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown> & { base: Record<string, number> };
    expect(r.stdout.trim().split('\n').length).toBe(1);
    expect(Math.abs((out.loss as number) - goldenJson.lora_loss)).toBeLessThan(1e-4);
    expect(Math.abs(out.base.loss! - goldenJson.loss)).toBeLessThan(1e-4);
    expect(out.perplexity).toBeCloseTo(Math.exp(out.loss as number), 10);
    expect(out.base.perplexity).toBeCloseTo(Math.exp(goldenJson.loss), 2);
    for (const m of [out, out.base]) {
      expect(m.tokens).toBe(46);
      expect(typeof m.token_accuracy).toBe('number');
      expect(m.tokens_per_second).toBeGreaterThan(0);
    }
    expect(out.adapter).toBe(`${GOLDEN}/adapter`);
    expect(out.records).toBe(2);
    expect(out.base).not.toHaveProperty('base');
    expect(r.stderr).toContain(`mft: evaluating adapter ${GOLDEN}/adapter`);
  });

  test('--pack puts the documents in one row and gives the per-document reference loss (table output)', () => {
    // The three documents of the fixture's packed row (7, 10 and 5 tokens), one record each; the
    // reference is the mean over their 19 predictions of the fixture's packed_logits, in float64.
    const ids = golden.read('packed_input_ids').data as Int32Array;
    const logits = golden.read('packed_logits').data as Float32Array;
    const records: { input_ids: number[] }[] = [];
    let at = 0;
    let nll = 0;
    for (const len of goldenJson.packed_documents) {
      records.push({ input_ids: Array.from(ids.slice(at, at + len)) });
      for (let t = at; t < at + len - 1; t++) {
        const z = Array.from(logits.subarray(t * 384, (t + 1) * 384));
        const max = Math.max(...z);
        nll += max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0)) - z[ids[t + 1]!]!;
      }
      at += len;
    }
    const loss = nll / 19;
    const r = runCli([
      'eval',
      '--model',
      GOLDEN,
      '--data',
      jsonl('docs.jsonl', records),
      '--pack',
      '--token-budget',
      '22',
    ]);
    expect(r.status).toBe(0);
    // without --pack these rows (10, 7, 5 tokens) would need two batches under a budget of 22
    expect(r.stderr).toContain('mft: 19 tokens with loss in 3 samples, 1 batches');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]!.trim()).toBe('base');
    expect(lines[1]).toMatch(new RegExp(`^loss\\s+${loss.toFixed(4)}$`));
    expect(lines.find((l) => l.startsWith('tokens (with loss)'))).toMatch(/\s19$/);
  });

  test('user mistakes: text without a tokenizer, a record longer than the context', () => {
    const text = runCli(['eval', '--model', GOLDEN, '--data', jsonl('text.jsonl', [{ text: 'hello' }])]);
    expect(text.status).toBe(2);
    expect(text.stderr).toMatch(/no tokenizer\.json in the model folder, and .*text\.jsonl:1 is text/);
    expect(text.stdout).toBe('');

    const long = runCli([
      'eval',
      '--model',
      GOLDEN,
      '--data',
      jsonl('long.jsonl', [{ input_ids: new Array(65).fill(5) }]),
    ]);
    expect(long.status).toBe(2);
    expect(long.stderr).toMatch(
      /long\.jsonl:1: the record has 65 tokens, more than the model's max_position_embeddings \(64\) \(fix:/,
    );

    const noAdapter = runCli(['eval', '--model', GOLDEN, '--data', 'x.jsonl', '--compare']);
    expect(noAdapter.status).toBe(2);
    expect(noAdapter.stderr).toMatch(/--compare: needs an adapter/);
  });

  test('a code_completion task file: validation split, line completion against the greedy story', () => {
    const folder = join(tmp, 'stories');
    jsonl('stories/train.jsonl', [{ text: 'Once upon a time.\nThe end.\n' }]);
    jsonl('stories/validation.jsonl', [
      { text: `${story[0]}\n${story[1]}\n` },
      { text: `${story[0]}\nThe cat sat on the mat.\n` },
    ]);
    const task = join(tmp, 'code.yaml');
    writeFileSync(task, `task: code_completion\ndataset: ${folder}\nbase_model: tinystories-260k\n`);
    const r = runCli(['eval', task, '--json']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as {
      loss: number;
      data: string;
      line_completion: {
        samples: number;
        exact_match: number;
        predictions: { prediction: string; reference: string }[];
      };
    };
    expect(out.data).toMatch(/^validation split of /);
    expect(out.loss).toBeGreaterThan(0);
    expect(out.line_completion.samples).toBe(2);
    expect(out.line_completion.predictions.map((p) => p.prediction)).toEqual([story[1], story[1]]);
    expect(out.line_completion.predictions.map((p) => p.reference)).toEqual([
      story[1],
      'The cat sat on the mat.',
    ]);
    expect(out.line_completion.exact_match).toBe(0.5);
  });

  test('an adapter trained by mft train on an NF4 base: the losses of its metrics.jsonl', async () => {
    const texts = Array.from({ length: 16 }, (_, i) => ({
      text: `${story[i % 4]!.slice(0, 40 + 7 * i)}`,
    }));
    const data = jsonl('trained/data.jsonl', texts);
    const { task, runDir, evals } = await trainRun('trained', data, [
      'quantization: nf4',
      'val_set_size: 0.25',
      'sequence_len: 128',
      'max_steps: 2',
      'eval_steps: 1',
      'save_steps: 2',
    ]);
    const first = evals.find((m) => m.step === 0)!;
    const last = evals[evals.length - 1]!;
    expect(last.eval_loss).not.toBe(first.eval_loss);

    // The task file gives the held-out records; the adapter's mft_training.json says NF4.
    const r = runCli(['eval', task, '--adapter', runDir, '--compare', '--json']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { loss: number; quantization: string; base: { loss: number } };
    expect(out.quantization).toBe('nf4');
    expect(Math.abs(out.loss - last.eval_loss)).toBeLessThan(1e-4);
    expect(Math.abs(out.base.loss - first.eval_loss)).toBeLessThan(1e-4);
  });
});

describe("mft eval: long records and the trainer's rows", () => {
  const long = `${story.slice(0, 4).join('\n')}\n`.repeat(8); // over 512 tokens: past tinystories' context
  const BASE = 'checkpoints/base/tinystories-260k';

  test('--data with --task cuts samples as the recipe trains them; flags set the length and the rule', () => {
    const folder = join(tmp, 'long');
    jsonl('long/train.jsonl', [{ text: 'x' }]);
    jsonl('long/validation.jsonl', [{ text: long }]);
    const evalLong = (...flags: string[]) => runCli(['eval', '--model', BASE, '--data', folder, ...flags]);
    const recipe = evalLong('--task', 'code_completion', '--max-samples', '0', '--json');
    expect(recipe.stderr).not.toMatch(/^mft: .*(error|max_position)/m);
    expect(recipe.status).toBe(0);
    const out = JSON.parse(recipe.stdout) as { samples: number; input_tokens: number };
    // code_completion trains on rows of 128: the long record (over 512 tokens) becomes pieces of 128
    expect(out.input_tokens).toBeGreaterThan(512);
    expect(out.samples).toBe(Math.ceil(out.input_tokens / 128));
    expect(recipe.stderr).toContain('mft: data: 1 samples cut to sequence_len, 0 dropped as too long');

    const cut = evalLong(
      '--task',
      'code_completion',
      '--max-samples',
      '0',
      '--sequence-len',
      '64',
      '--truncation',
      'truncate',
      '--json',
    );
    expect(cut.status).toBe(0);
    const c = JSON.parse(cut.stdout) as { samples: number; input_tokens: number };
    expect(c.samples).toBe(1);
    expect(c.input_tokens).toBe(64);

    const whole = evalLong('--max-samples', '0');
    expect(whole.status).toBe(2);
    expect(whole.stderr).toMatch(
      /more than the model's max_position_embeddings \(512\) \(fix: give --sequence-len N/,
    );

    const tooLong = evalLong('--sequence-len', '1024');
    expect(tooLong.status).toBe(2);
    expect(tooLong.stderr).toMatch(
      /--sequence-len: 1024 is more than the model's max_position_embeddings 512/,
    );
  });

  test("--rows N evaluates the trainer's first N packed rows: the same loss as the run's eval_loss", async () => {
    const texts = Array.from({ length: 24 }, (_, i) => ({ text: story[i % 4]!.slice(0, 30 + 5 * i) }));
    const data = jsonl('rows/data.jsonl', texts);
    const { task, evals } = await trainRun('rows', data, [
      'val_set_size: 0.5',
      'sequence_len: 64',
      'max_steps: 1',
      'eval_max_samples: 2',
    ]);
    const base = evals.find((m) => m.step === 0)!;
    expect(base.eval_rows).toBe(2);

    const rows = runCli(['eval', task, '--rows', '2', '--max-samples', '0', '--json']);
    expect(rows.status).toBe(0);
    const r = JSON.parse(rows.stdout) as { loss: number; data: string };
    expect(Math.abs(r.loss - base.eval_loss)).toBeLessThan(1e-4);
    expect(r.data).toMatch(/the first 2 of \d+ packed rows/);

    // Without --rows: every row, and a note saying why the number differs from the run's.
    const all = runCli(['eval', task, '--max-samples', '0', '--json']);
    expect(all.status).toBe(0);
    expect(all.stderr).toMatch(
      /mft: data: all \d+ packed rows; a run's eval_loss covers the first 2 \(eval_max_samples\), --rows 2 evaluates those/,
    );
    expect(Math.abs((JSON.parse(all.stdout) as { loss: number }).loss - base.eval_loss)).toBeGreaterThan(
      1e-3,
    );
  });
});

/**
 * Train a two-row-batch LoRA (r 4) on tinystories-260k over `data`, with `keys` added to the task
 * file. @returns the task file, the run directory and the eval rows of its metrics.jsonl
 */
async function trainRun(
  name: string,
  data: string,
  keys: string[],
): Promise<{
  task: string;
  runDir: string;
  evals: { step: number; eval_loss: number; eval_rows: number }[];
}> {
  const task = join(tmp, `${name}/task.yaml`);
  writeFileSync(
    task,
    [
      'task: text',
      `dataset: ${data}`,
      'base_model: tinystories-260k',
      'micro_batch_size: 2',
      'learning_rate: 0.01',
      'lora_r: 4',
      ...keys,
      `output_dir: ${join(tmp, name, 'run')}`,
      `cache_dir: ${join(tmp, name, 'cache')}`,
      'backend: wasm',
    ].join('\n'),
  );
  const { runDir } = await train(await loadTaskConfig(task), { handleSignals: false, progress: silent() });
  const evals = readMetrics(join(runDir, 'metrics.jsonl')).filter((m) => m.type === 'eval');
  return { task, runDir, evals: evals as { step: number; eval_loss: number; eval_rows: number }[] };
}

/** A progress display that prints nothing. */
function silent(): Progress {
  return { start() {}, step() {}, eval() {}, note() {}, stop() {} };
}
