import type { DataConfig, DataRecipe, RecipeFormat } from '../../src/data/types.js';

const FIELDS: Record<RecipeFormat, Record<string, string>> = {
  text: { text: 'text' },
  completion: { prompt: 'prompt', completion: 'completion' },
  alpaca: { instruction: 'instruction', input: 'input', output: 'output' },
  instruct: { messages: 'messages' },
  code_completion: { text: 'text' },
};

/**
 * A recipe of `format` whose fields are the format's own names, with EOS and the format's usual
 * `train_on` (all for text and code, assistant for chats, completion otherwise).
 */
export function plainRecipe(format: RecipeFormat, trainOn?: DataRecipe['train_on']): DataRecipe {
  const usual =
    format === 'text' || format === 'code_completion'
      ? 'all'
      : format === 'instruct'
        ? 'assistant'
        : 'completion';
  return { name: format, format, fields: FIELDS[format], train_on: trainOn ?? usual, add_eos: true };
}

/**
 * A data config: packed rows of 256 tokens, samples split to fit, no validation split, bad records
 * are errors, no FIM; `over` sets the rest and changes any of these.
 */
export function dataConfig(
  over: Pick<DataConfig, 'dataset' | 'recipe' | 'cache_dir' | 'seed'> & Partial<DataConfig>,
): DataConfig {
  return {
    sequence_len: 256,
    sample_packing: true,
    truncation: 'split',
    val_set_size: 0,
    on_bad_record: 'error',
    fields: {},
    fim_rate: 0,
    ...over,
  };
}
