import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadTaskConfig } from '../../src/config/index.js';
import { formatProblem, MftError } from '../../src/util/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';

const DIR = 'test/fixtures/configs/broken';
const abs = (...parts: string[]) => join(REPO_ROOT, ...parts);
const CONFIGS = abs('test/fixtures/configs');

// Each broken task file and the exact lines mft reports for it (before the `mft: ` prefix).
// The file names are relative to DIR; each line starts with `<file>:line:col: ` unless noted.
const CASES: Record<string, string[]> = {
  'yaml-unclosed-list.yaml': [
    '5:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ],
  'yaml-bad-indent.yaml': ['4:9: YAML syntax error: Nested mappings are not allowed in compact mappings'],
  'yaml-tab-indent.yaml': ['5:1: YAML syntax error: Tabs are not allowed as indentation'],
  'not-a-mapping.yaml': ['1:1: expected key: value lines, got a list'],
  'duplicate-key.yaml': [
    '6:1: lora_alpha: duplicate key (first at line 4, column 1) (fix: keep one of them)',
  ],
  'unknown-key-typo.yaml': ['4:1: lora_aplha: unknown key (fix: did you mean lora_alpha?)'],
  'unknown-key-no-suggestion.yaml': ['4:1: colour: unknown key'],
  'unknown-key-other-tool.yaml': ['4:1: num_train_epochs: unknown key (fix: mft calls it num_epochs)'],
  'wrong-type-string.yaml': ['4:13: lora_alpha: expected a number, got "sixteen"'],
  'wrong-type-yes.yaml': ['4:17: sample_packing: expected true or false, got "yes"'],
  'empty-value.yaml': ['4:1: lora_alpha: expected a number, got null'],
  'float-lora-r.yaml': ['4:9: lora_r: expected an integer, got 8.5'],
  'negative-lora-r.yaml': ['4:9: lora_r: must be > 0, got -4'],
  'lora-alpha-zero.yaml': ['4:13: lora_alpha: must be > 0, got 0'],
  'lora-dropout-one.yaml': ['4:15: lora_dropout: must be in [0, 1), got 1'],
  'bad-enum.yaml': [
    '4:15: quantization: expected one of none, int8, nf4, got "nf5" (fix: did you mean nf4?)',
  ],
  'bad-target-module.yaml': [
    '4:31: lora_target_modules[1]: expected one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, got "v_prj" (fix: did you mean v_proj?)',
  ],
  'val-set-size-fraction.yaml': [
    '4:15: val_set_size: expected a fraction in (0, 1) or a whole count, got 1.5',
  ],
  'warmup-steps-and-ratio.yaml': [
    '5:15: warmup_ratio: set either warmup_steps or warmup_ratio, not both (fix: remove one of them)',
  ],
  'sequence-len-too-long.yaml': [
    `4:15: sequence_len: 4096 is more than the model's max_position_embeddings 512 (${CONFIGS}/tiny-model/config.json) (fix: set sequence_len to at most 512)`,
  ],
  'unknown-field.yaml': [
    '5:8: fields.txt: the recipe code_completion reads no field txt (it reads text) (fix: did you mean text?)',
  ],
  'fim-needs-code.yaml': [
    '4:11: fim_rate: fill-in-the-middle needs the code_completion format; recipe completion has format completion (fix: set fim_rate: 0, or use task: code_completion)',
  ],
  'missing-dataset.yaml': [
    ': dataset: required (fix: add a line like "dataset: github_code" (a name in datasets/ or a path))',
  ],
  'missing-task.yaml': [
    ': task: required (fix: add a line like "task: code_completion" (recipes: alpaca, code_completion, completion, instruct, text))',
  ],
  'empty-file.yaml': [
    ': task: required (fix: add a line like "task: code_completion" (recipes: alpaca, code_completion, completion, instruct, text))',
    ': dataset: required (fix: add a line like "dataset: github_code" (a name in datasets/ or a path))',
  ],
  'unknown-task.yaml': [
    `1:7: task: recipe "code_complete" not found; searched ${abs('recipes/code_complete.yaml')} (fix: did you mean code_completion?)`,
  ],
  'missing-recipe-file.yaml': [
    `1:7: task: recipe "./no-such-recipe.yaml" not found; searched ${CONFIGS}/broken/no-such-recipe.yaml (fix: give the path of a recipe .yaml file)`,
  ],
  'missing-dataset-file.yaml': [
    `4:5: dataset[1]: "../data/missing.jsonl" not found; searched ${CONFIGS}/data/missing.jsonl (fix: a relative path is relative to the task file's folder)`,
  ],
  'missing-base-model.yaml': [
    `3:13: base_model: "../no-such-model" not found; searched ${CONFIGS}/no-such-model (fix: a relative path is relative to the task file's folder)`,
  ],
  'base-model-without-config.yaml': [
    `3:13: base_model: ${CONFIGS}/data/config.json not found (fix: base_model must be a Hugging Face model folder with config.json)`,
  ],
  'several-problems.yaml': [
    '4:16: learning_rate: expected a number, got "2e-4x"',
    '5:12: max_steps: must be > 0, got 0',
    '6:15: lora_dropout: must be in [0, 1), got -0.1',
    '7:10: backend: expected one of auto, tensorflow, webgpu, wasm, cpu, got "gpu" (fix: did you mean cpu?)',
    '8:16: max_grad_norm: expected a number or null, got "none"',
  ],
};

// Depends on the shipped datasets/github_code for its suggestion.
const NEEDS_SHIPPED_DATASET: Record<string, string[]> = {
  'unknown-dataset-name.yaml': [
    `2:10: dataset: "github_cod" not found; searched ${abs('datasets/github_cod')} (fix: did you mean github_code?)`,
  ],
};

async function problemsOf(file: string): Promise<string[]> {
  try {
    await loadTaskConfig(`${DIR}/${file}`, { cwd: REPO_ROOT });
  } catch (e) {
    if (e instanceof MftError) return e.problems.map(formatProblem);
    throw e;
  }
  return [];
}

describe('broken task files', () => {
  test('the corpus has at least 20 files and every file has its expected messages here', () => {
    const files = readdirSync(abs(DIR)).sort();
    expect(files.length).toBeGreaterThanOrEqual(20);
    expect(files).toEqual(Object.keys({ ...CASES, ...NEEDS_SHIPPED_DATASET }).sort());
  });

  test.each(Object.entries(CASES))('%s', async (file, lines) => {
    expect(await problemsOf(file)).toEqual(
      lines.map((l) => `${DIR}/${file}${l.startsWith(':') ? '' : ':'}${l}`),
    );
  });

  test.skipIf(!existsSync(abs('datasets/github_code')))('unknown-dataset-name.yaml', async () => {
    const [file, lines] = Object.entries(NEEDS_SHIPPED_DATASET)[0]!;
    expect(await problemsOf(file)).toEqual(lines.map((l) => `${DIR}/${file}:${l}`));
  });
});
