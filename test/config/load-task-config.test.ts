import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadTaskConfig, NOT_SUPPORTED_YET, TASK_KEYS, type TaskConfig } from '../../src/config/index.js';
import { loadTaskConfigWith } from '../../src/config/load-task-config.js';
import { formatProblem, MftError } from '../../src/util/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp-dir.js';

const root = (...p: string[]) => join(REPO_ROOT, ...p);
const CONFIGS = root('test/fixtures/configs');
afterAll(removeTempDirs);

/** A fresh folder outside the repository. */
const tempDir = () => makeTempDir('config');

function write(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
}

/** A folder with a task file, a data file, a model config and the given recipe, outside the repo. */
function project(task: string, recipe?: string): { dir: string; file: string } {
  const dir = tempDir();
  write(dir, 'data/train.jsonl', '{"text": "x = 1\\n"}\n');
  write(dir, 'model/config.json', '{"max_position_embeddings": 128}');
  if (recipe !== undefined) write(dir, 'my-recipe.yaml', recipe);
  return { dir, file: write(dir, 'task.yaml', task) };
}

const RECIPE = `name: mine
description: a test recipe
format: text
fields: {text: body}
train_on: all
add_eos: true
eval_metrics: [loss]
defaults:
  base_model: ./nowhere  # overridden by every task below
  sequence_len: 64
  micro_batch_size: 2
  num_epochs: 3
  learning_rate: 0.01
  val_set_size: 0.25
  eval_max_samples: 8
  lora_r: 4
  warmup_ratio: 0.1
`;

async function problems(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MftError) return e.problems.map(formatProblem);
    throw e;
  }
  throw new Error('expected the config to be rejected');
}

const shippedAssets =
  existsSync(root('datasets/github_code')) && existsSync(root('checkpoints/base/tinystories-260k'));

describe('the seed task file', () => {
  test('holds exactly the four keys of the seed, then only comments', () => {
    const lines = readFileSync(root('configs/code_completion.yaml'), 'utf8').split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'task: "code_completion"',
      'dataset: "github_code"',
      'lora_alpha: 16',
      'lora_dropout: 0.1',
    ]);
    for (const line of lines.slice(4)) expect(line === '' || line.startsWith('#')).toBe(true);
  });

  test.skipIf(!shippedAssets)(
    'is valid as written, with the recipe and defaults filling the rest',
    async () => {
      const c = await loadTaskConfig('configs/code_completion.yaml', { cwd: REPO_ROOT });
      expect(c.task).toBe('code_completion');
      expect(c.dataset).toEqual([root('datasets/github_code')]);
      expect(c.base_model).toBe(root('checkpoints/base/tinystories-260k'));
      expect([c.lora_alpha, c.lora_dropout]).toEqual([16, 0.1]);
      expect(c.sources.lora_alpha).toBe('task file');
      expect(c.sources.base_model).toBe('recipe');
      expect(c.sources.sequence_len).toBe('recipe');
      expect(c.sources.adam_beta2).toBe('default');
      expect(c.recipe.eval_metrics).toEqual(['loss', 'perplexity', 'line_completion']);
      expect(c.configFile).toBe(root('configs/code_completion.yaml'));
    },
  );
});

describe('the resolved config', () => {
  test('has every task key of the contract, frozen all the way down', async () => {
    const c = await loadTaskConfig('test/fixtures/configs/valid/minimal.yaml', { cwd: REPO_ROOT });
    // biome-ignore format: one key per contract line
    const contract = ['task', 'dataset', 'base_model', 'backend', 'num_workers', 'seed', 'output_dir', 'cache_dir', 'lora_r', 'lora_alpha', 'lora_dropout', 'lora_target_modules', 'use_rslora', 'quantization', 'double_quant', 'precision', 'gradient_checkpointing', 'sequence_len', 'sample_packing', 'truncation', 'val_set_size', 'on_bad_record', 'max_record_bytes', 'fields', 'fim_rate', 'micro_batch_size', 'gradient_accumulation_steps', 'num_epochs', 'max_steps', 'learning_rate', 'lr_scheduler', 'warmup_steps', 'warmup_ratio', 'min_lr_ratio', 'weight_decay', 'adam_beta1', 'adam_beta2', 'adam_epsilon', 'max_grad_norm', 'eval_steps', 'eval_max_samples', 'save_steps', 'save_total_limit', 'logging_steps'];
    expect([...TASK_KEYS].sort()).toEqual([...contract].sort());
    for (const key of contract) {
      expect(c[key as keyof TaskConfig], key).not.toBeUndefined();
      expect(c.sources[key as keyof TaskConfig['sources']], key).toBeDefined();
    }
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.dataset)).toBe(true);
    expect(Object.isFrozen(c.fields)).toBe(true);
    expect(Object.isFrozen(c.recipe.defaults)).toBe(true);
    expect(() => {
      (c as { lora_r: number }).lora_r = 1;
    }).toThrow();
  });

  test('2e-4 and 1.0e-6 are numbers; lists, maps and nulls keep their kind', async () => {
    const now = new Date(2025, 0, 2, 3, 4, 5);
    const c = await loadTaskConfig('test/fixtures/configs/valid/every-kind-of-value.yaml', {
      cwd: REPO_ROOT,
      now,
    });
    expect(c.learning_rate).toBe(0.0002);
    expect(c.adam_epsilon).toBe(0.000001);
    expect(c.lora_target_modules).toEqual(['q_proj', 'v_proj']);
    expect(c.fields).toEqual({ prompt: 'prompt', completion: 'canonical_solution' });
    expect(c.sources.fields).toBe('task file');
    expect(c.max_grad_norm).toBeNull();
    expect(c.eval_steps).toBeNull();
    expect(c.val_set_size).toBe(10);
    // max_steps wins over num_epochs without an error; both are kept for the trainer.
    expect([c.max_steps, c.num_epochs]).toEqual([20, 2]);
    // the task file sets warmup_steps, so the recipe's warmup_ratio gives way.
    expect([c.warmup_steps, c.warmup_ratio, c.sources.warmup_ratio]).toEqual([5, 0, 'default']);
    expect(c.dataset).toEqual([`${CONFIGS}/data/train.jsonl`, `${CONFIGS}/data`]);
    expect(c.output_dir).toBe(`${CONFIGS}/valid/runs/every-kind`);
    expect(c.cache_dir).toBe(`${CONFIGS}/valid/cache`);
  });
});

describe('precedence: --set > task file > recipe > default', () => {
  test('each layer wins over the ones below it, and the source says which', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\nlora_r: 8\nlearning_rate: 0.02\n',
      RECIPE,
    );
    const c = await loadTaskConfig(file, { cwd: dir, set: ['lora_r=12'] });
    expect([c.lora_r, c.sources.lora_r]).toEqual([12, '--set']);
    expect([c.learning_rate, c.sources.learning_rate]).toEqual([0.02, 'task file']);
    expect([c.micro_batch_size, c.sources.micro_batch_size]).toEqual([2, 'recipe']);
    expect([c.num_epochs, c.sources.num_epochs]).toEqual([3, 'recipe']);
    expect([c.lora_alpha, c.sources.lora_alpha]).toEqual([32, 'default']);
    expect([c.gradient_accumulation_steps, c.sources.gradient_accumulation_steps]).toEqual([1, 'default']);
    expect(c.task).toBe('mine');
    expect(c.recipe.file).toBe(join(dir, 'my-recipe.yaml'));
    expect(c.fields).toEqual({ text: 'body' });
  });

  test('--set values are YAML: numbers, lists, null, flow maps and dotted map keys', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\n',
      RECIPE,
    );
    const c = await loadTaskConfig(file, {
      cwd: dir,
      set: [
        'learning_rate=2e-4',
        'lora_target_modules=[q_proj, v_proj]',
        'max_steps=null',
        'max_steps=7',
        'max_grad_norm=null',
        'fields.text=content',
        'use_rslora=true',
        'lr_scheduler=linear',
      ],
    });
    expect(c.learning_rate).toBe(0.0002);
    expect(c.lora_target_modules).toEqual(['q_proj', 'v_proj']);
    expect(c.max_steps).toBe(7); // the later --set of a key wins
    expect(c.max_grad_norm).toBeNull();
    expect([c.fields, c.sources.fields]).toEqual([{ text: 'content' }, '--set']);
    expect(c.use_rslora).toBe(true);
    expect(c.lr_scheduler).toBe('linear');
    const flow = await loadTaskConfig(file, { cwd: dir, set: ['fields={text: column2}'] });
    expect(flow.fields).toEqual({ text: 'column2' });
  });

  test('--set mistakes are placed at "--set key" and reported with the file problems', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\nlora_r: x\n',
      RECIPE,
    );
    const got = await problems(
      loadTaskConfig(file, {
        cwd: dir,
        set: [
          'lora_alpha=sixteen',
          'lora_alph=3',
          'lr=0.1',
          'lora_r',
          'lora_r.x=1',
          'fields.txt=content',
          'lora_target_modules=[q_proj, v_prj]',
          'seed=a: b',
          'quantization=nf5',
        ],
      }),
    );
    expect(got).toEqual([
      `${file}:4:9: lora_r: expected an integer, got "x"`,
      '--set lora_alpha: expected a number, got "sixteen"',
      '--set lora_alph: unknown key (fix: did you mean lora_alpha?)',
      '--set lr: unknown key (fix: mft calls it learning_rate)',
      '--set lora_r: expected key=value (fix: write it like --set lora_r=8)',
      '--set lora_r.x: lora_r has no sub-key x (fix: --set lora_r=...)',
      '--set lora_target_modules: lora_target_modules[1]: expected one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, got "v_prj" (fix: did you mean v_proj?)',
      '--set seed: expected one YAML value, got "a: b" (fix: a number, a word, null, or a flow list like [q_proj, v_proj])',
      '--set quantization: expected one of none, int8, nf4, got "nf5" (fix: did you mean nf4?)',
      '--set fields: fields.txt: the recipe mine reads no field txt (it reads text) (fix: did you mean text?)',
    ]);
  });

  test('warmup_steps and warmup_ratio are one setting: the highest layer decides', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\n',
      RECIPE,
    );
    const fromRecipe = await loadTaskConfig(file, { cwd: dir });
    expect([fromRecipe.warmup_steps, fromRecipe.warmup_ratio, fromRecipe.sources.warmup_ratio]).toEqual([
      0,
      0.1,
      'recipe',
    ]);
    const fromSet = await loadTaskConfig(file, { cwd: dir, set: ['warmup_steps=3'] });
    expect([fromSet.warmup_steps, fromSet.warmup_ratio]).toEqual([3, 0]);
    expect(
      await problems(loadTaskConfig(file, { cwd: dir, set: ['warmup_steps=3', 'warmup_ratio=0.2'] })),
    ).toEqual([
      '--set warmup_ratio: set either warmup_steps or warmup_ratio, not both (fix: remove one of them)',
    ]);
  });
});

describe('recipe defaults', () => {
  test('a key the recipe does not give and no default covers is an error naming the recipe', async () => {
    const recipe = RECIPE.replace('  micro_batch_size: 2\n', '').replace('  num_epochs: 3\n', '');
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\n',
      recipe,
    );
    expect(await problems(loadTaskConfig(file, { cwd: dir }))).toEqual([
      `${file}: micro_batch_size: no value; the recipe mine gives no default (fix: set micro_batch_size here or in the defaults of my-recipe.yaml)`,
      `${file}: num_epochs: no value; the recipe mine gives no default (fix: set num_epochs or max_steps)`,
    ]);
    // With max_steps, the run needs no epoch count: num_epochs is unbounded.
    const c = await loadTaskConfig(file, { cwd: dir, set: ['max_steps=5', 'micro_batch_size=1'] });
    expect([c.max_steps, c.num_epochs]).toEqual([5, Number.POSITIVE_INFINITY]);
  });

  test('sequence_len from the recipe is checked against the model, placed in the recipe file', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\n',
      RECIPE.replace('sequence_len: 64', 'sequence_len: 256'),
    );
    expect(await problems(loadTaskConfig(file, { cwd: dir }))).toEqual([
      `my-recipe.yaml:10:17: sequence_len: 256 is more than the model's max_position_embeddings 128 (${join(dir, 'model/config.json')}) (fix: set sequence_len to at most 128)`,
    ]);
  });
});

describe('path roots', () => {
  test.skipIf(!shippedAssets)(
    'shipped names resolve against the package root from a task file anywhere',
    async () => {
      const dir = tempDir();
      const elsewhere = tempDir();
      const file = write(dir, 'sub/task.yaml', 'task: code_completion\ndataset: github_code\n');
      const c = await loadTaskConfig(file, { cwd: elsewhere });
      expect(c.recipe.file).toBe(root('recipes/code_completion.yaml'));
      expect(c.dataset).toEqual([root('datasets/github_code')]);
      expect(c.base_model).toBe(root('checkpoints/base/tinystories-260k'));
      // a bare base_model name is a folder of checkpoints/base/
      const named = await loadTaskConfig(file, { cwd: elsewhere, set: ['base_model=tinystories-260k'] });
      expect([named.base_model, named.sources.base_model]).toEqual([
        root('checkpoints/base/tinystories-260k'),
        '--set',
      ]);
    },
  );

  test("paths the user writes resolve against the task file's folder, not the current directory", async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: [./data/train.jsonl, ./data]\nbase_model: ./model\n',
      RECIPE,
    );
    const elsewhere = tempDir();
    const typed = relative(elsewhere, file); // ../mft-config-xyz/task.yaml, as a user would type it
    const c = await loadTaskConfig(typed, { cwd: elsewhere });
    expect(c.configFile).toBe(file);
    expect(c.base_model).toBe(join(dir, 'model'));
    expect(c.dataset[0]).toBe(join(dir, 'data/train.jsonl'));
  });

  test('a bare dataset name looks in datasets/ of the package root, then of the current directory', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: mine_only_here\nbase_model: ./model\n',
      RECIPE,
    );
    const cwd = tempDir();
    expect(await problems(loadTaskConfig(file, { cwd }))).toEqual([
      `${file}:2:10: dataset: "mine_only_here" not found; searched ${root('datasets/mine_only_here')}, ${join(cwd, 'datasets/mine_only_here')} (fix: give a name in datasets/ (${listShipped()}) or a path such as ./mine_only_here)`,
    ]);
    write(cwd, 'datasets/mine_only_here/train.jsonl', '{"text": "a"}\n');
    const c = await loadTaskConfig(file, { cwd });
    expect(c.dataset).toEqual([join(cwd, 'datasets/mine_only_here')]);
    expect(dir).not.toBe(cwd);
  });

  test('a path from a recipe resolves against the package root, then the current directory', async () => {
    const recipe = RECIPE.replace('./nowhere', 'test/fixtures/configs/tiny-model');
    const { dir, file } = project('task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\n', recipe);
    const c = await loadTaskConfig(file, { cwd: dir });
    expect([c.base_model, c.sources.base_model]).toEqual([`${CONFIGS}/tiny-model`, 'recipe']);
    const onlyInCwd = RECIPE.replace('./nowhere', 'models/local');
    const p2 = project('task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\n', onlyInCwd);
    expect(await problems(loadTaskConfig(p2.file, { cwd: p2.dir }))).toEqual([
      `my-recipe.yaml:9:15: base_model: "models/local" not found; searched ${root('models/local')}, ${join(p2.dir, 'models/local')} (fix: check the path)`,
    ]);
    write(p2.dir, 'models/local/config.json', '{}');
    expect((await loadTaskConfig(p2.file, { cwd: p2.dir })).base_model).toBe(join(p2.dir, 'models/local'));
  });

  test('--set paths are relative to the current directory', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\n',
      RECIPE,
    );
    const cwd = tempDir();
    write(cwd, 'other.jsonl', '{"text": "b"}\n');
    const c = await loadTaskConfig(file, { cwd, set: ['dataset=./other.jsonl', 'output_dir=out/run1'] });
    expect(c.dataset).toEqual([join(cwd, 'other.jsonl')]);
    expect(c.output_dir).toBe(join(cwd, 'out/run1'));
    expect(dir).not.toBe(cwd);
  });

  test('output_dir defaults under the current directory; cache_dir follows MFT_CACHE_DIR', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\n',
      RECIPE,
    );
    const cwd = tempDir();
    const now = new Date(2025, 10, 9, 8, 7, 6);
    const c = await loadTaskConfig(file, { cwd, now, env: { MFT_CACHE_DIR: 'cache-here' } });
    expect(c.output_dir).toBe(join(cwd, 'checkpoints/runs/task-20251109-080706'));
    expect(c.cache_dir).toBe(join(cwd, 'cache-here'));
    const d = await loadTaskConfig(file, { cwd, now, env: {} });
    expect(d.cache_dir).toBe(join(homedir(), '.cache/mft'));
    expect(dir).not.toBe(cwd);
  });
});

describe('keys that are not supported yet', () => {
  test('starts as a set that the loader consults', () => {
    expect(NOT_SUPPORTED_YET).toBeInstanceOf(Set);
  });

  test('setting one in the task file, with --set or in the recipe is an error', async () => {
    const { dir, file } = project(
      'task: ./my-recipe.yaml\ndataset: ./data/train.jsonl\nbase_model: ./model\nuse_rslora: true\n',
      RECIPE,
    );
    const fake = new Set(['use_rslora', 'fim_rate', 'lora_r']);
    expect(await problems(loadTaskConfigWith(file, { cwd: dir, set: ['fim_rate=0.5'] }, fake))).toEqual([
      `${file}:4:1: use_rslora: not supported yet (fix: remove it; this version of mft cannot honour it)`,
      '--set fim_rate: not supported yet (fix: remove it; this version of mft cannot honour it)',
      'my-recipe.yaml:16:11: defaults.lora_r: not supported yet',
    ]);
    // Unset, such keys keep their default.
    const c = await loadTaskConfigWith(file, { cwd: dir }, new Set(['fim_rate']));
    expect(c.fim_rate).toBe(0);
  });
});

describe('the task file itself', () => {
  test('a missing file and a folder are errors naming the path', async () => {
    expect(await problems(loadTaskConfig('no/such.yaml', { cwd: REPO_ROOT }))).toEqual([
      'no/such.yaml: task file not found (fix: check the path)',
    ]);
    expect(await problems(loadTaskConfig('configs', { cwd: REPO_ROOT }))).toEqual([
      'configs: is a folder, expected a task .yaml file (fix: give a file in it, such as configs/code_completion.yaml)',
    ]);
  });
});

function listShipped(): string {
  const d = root('datasets');
  const names = existsSync(d)
    ? readdirSync(d)
        .filter((n) => !n.startsWith('.'))
        .sort()
    : [];
  return names.join(', ') || 'none shipped';
}
