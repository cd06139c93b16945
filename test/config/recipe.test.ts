import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FORMATS, loadRecipe, loadTaskConfig } from '../../src/config/index.js';
import { formatProblem, MftError } from '../../src/util/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const SHIPPED = ['alpaca', 'code_completion', 'completion', 'instruct', 'text'];
const dir = fileTempDir('recipe');

function problemsOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof MftError) return e.problems.map(formatProblem);
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('shipped recipes', () => {
  test.each(SHIPPED)(
    '%s loads, reads the fields of its format and gives every recipe-level default',
    (name) => {
      const r = loadRecipe(name, { cwd: REPO_ROOT });
      expect(r.name).toBe(name);
      expect(r.file).toBe(join(REPO_ROOT, 'recipes', `${name}.yaml`));
      expect(Object.keys(r.fields).sort()).toEqual([...FORMATS[r.format].fields].sort());
      expect(FORMATS[r.format].trainOn).toContain(r.train_on);
      expect(r.defaults.base_model).toBe('checkpoints/base/tinystories-260k');
      for (const key of [
        'sequence_len',
        'micro_batch_size',
        'num_epochs',
        'learning_rate',
        'val_set_size',
        'eval_max_samples',
      ]) {
        expect(r.defaults, key).toHaveProperty(key);
      }
      expect(Object.isFrozen(r.fields)).toBe(true);
    },
  );

  test('formats, loss rules and eval metrics of the task recipes', () => {
    const cc = loadRecipe('code_completion', { cwd: REPO_ROOT });
    expect([cc.format, cc.train_on, cc.fields]).toEqual(['code_completion', 'all', { text: 'text' }]);
    expect(cc.eval_metrics).toEqual(['loss', 'perplexity', 'line_completion']);
    expect(cc.defaults.max_steps).toBeUndefined();
    const c = loadRecipe('completion', { cwd: REPO_ROOT });
    expect([c.format, c.train_on, c.fields]).toEqual([
      'completion',
      'completion',
      { prompt: 'prompt', completion: 'completion' },
    ]);
    expect(c.eval_metrics).toEqual(['loss', 'perplexity', 'exact_match']);
    expect(loadRecipe('alpaca', { cwd: REPO_ROOT }).train_on).toBe('output');
    expect(loadRecipe('instruct', { cwd: REPO_ROOT }).train_on).toBe('assistant');
  });

  test.each(SHIPPED)(
    'a task file with only task, dataset and base_model is complete with recipe %s',
    async (name) => {
      const file = join(dir, `${name}-task.yaml`);
      const configs = join(REPO_ROOT, 'test/fixtures/configs');
      writeFileSync(
        file,
        `task: ${name}\ndataset: ${configs}/data/train.jsonl\nbase_model: ${configs}/tiny-model\n`,
      );
      const c = await loadTaskConfig(file, { cwd: dir });
      expect(c.task).toBe(name);
      expect(c.fields).toEqual(c.recipe.fields);
      expect(Object.values(c.sources).filter((s) => s === 'recipe').length).toBeGreaterThan(5);
    },
  );

  test('an unknown recipe name lists the places searched and suggests a shipped one', () => {
    expect(problemsOf(() => loadRecipe('alpacca', { cwd: REPO_ROOT }))).toEqual([
      `task: recipe "alpacca" not found; searched ${join(REPO_ROOT, 'recipes/alpacca.yaml')} (fix: did you mean alpaca?)`,
    ]);
  });
});

describe('recipe files are checked like task files', () => {
  test('every problem is reported at its line:col', () => {
    const file = join(dir, 'bad-recipe.yaml');
    writeFileSync(
      file,
      [
        'name: bad', // 1
        'fomat: completion', // 2
        'fields:', // 3
        '  prompt: q', // 4
        '  answer: a', // 5
        'train_on: assistant', // 6
        'add_eos: true', // 7
        'eval_metrics: [loss, perplexty]', // 8
        'defaults:', // 9
        '  lora_r: 0', // 10
        '  task: text', // 11
        '  lora_aplha: 3', // 12
        '  fields: {text: body}', // 13
        '',
      ].join('\n'),
    );
    expect(problemsOf(() => loadRecipe(file, { cwd: dir }))).toEqual([
      'bad-recipe.yaml:2:1: fomat: unknown key (fix: did you mean format?)',
      'bad-recipe.yaml:8:22: eval_metrics[1]: expected one of loss, perplexity, token_accuracy, exact_match, edit_similarity, line_completion, got "perplexty" (fix: did you mean perplexity?)',
      'bad-recipe.yaml: description: required in a recipe (fix: add a line "description: ...")',
      'bad-recipe.yaml: format: required in a recipe (fix: add a line "format: ...")',
      'bad-recipe.yaml:10:11: defaults.lora_r: must be > 0, got 0',
      'bad-recipe.yaml:11:3: defaults.task: cannot be set here',
      'bad-recipe.yaml:12:3: defaults.lora_aplha: unknown key (fix: did you mean lora_alpha?)',
      'bad-recipe.yaml:13:3: defaults.fields: cannot be set here',
    ]);
  });

  test('fields and train_on must fit the format', () => {
    const file = join(dir, 'mismatch.yaml');
    writeFileSync(
      file,
      'name: m\ndescription: d\nformat: completion\nfields: {prompt: q, answer: a}\ntrain_on: assistant\nadd_eos: true\neval_metrics: [loss]\n',
    );
    expect(problemsOf(() => loadRecipe(file, { cwd: dir }))).toEqual([
      'mismatch.yaml:4:29: fields.answer: the completion format reads no field answer (it reads prompt, completion)',
      'mismatch.yaml:4:9: fields: missing completion (the completion format reads prompt, completion) (fix: add "completion: <column>")',
      'mismatch.yaml:5:11: train_on: the completion format trains on completion or all, got "assistant"',
    ]);
  });
});
