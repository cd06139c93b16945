// The resolved task values are the schema's types with every key present; the few keys the loader
// reshapes (dataset as a list of paths) keep their resolved types.
import { describe, expectTypeOf, test } from 'vitest';
import type { TASK_KEYS, TaskConfig, TaskValues } from '../../src/config/index.js';
import type { LinearName } from '../../src/model/linear-names.js';

describe('TaskValues', () => {
  test('has every task key, none optional', () => {
    expectTypeOf<keyof TaskValues>().toEqualTypeOf<(typeof TASK_KEYS)[number]>();
    expectTypeOf<TaskValues['base_model']>().toEqualTypeOf<string>();
    expectTypeOf<TaskValues['sequence_len']>().toEqualTypeOf<number>();
    expectTypeOf<TaskValues['max_steps']>().toEqualTypeOf<number | null>();
  });

  test('keeps the value types of the schema', () => {
    expectTypeOf<TaskValues['dataset']>().toEqualTypeOf<string[]>();
    expectTypeOf<TaskValues['quantization']>().toEqualTypeOf<'none' | 'int8' | 'nf4'>();
    expectTypeOf<TaskValues['truncation']>().toEqualTypeOf<'split' | 'truncate' | 'drop'>();
    expectTypeOf<TaskValues['lora_target_modules']>().toEqualTypeOf<LinearName[] | 'all-linear'>();
    expectTypeOf<TaskValues['fields']>().toEqualTypeOf<Record<string, string>>();
    expectTypeOf<TaskConfig['sources']['lora_r']>().toEqualTypeOf<
      'default' | 'recipe' | 'task file' | '--set'
    >();
  });
});
