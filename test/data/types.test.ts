import { expect, test } from 'vitest';
import type { TaskConfig } from '../../src/config/index.js';
import type { DataConfig } from '../../src/data/types.js';

// buildDataset takes the slice of the task configuration it reads; a full TaskConfig must fit it.
// (Checked by the type checker: this file does not compile if the two drift apart.)
function asDataConfig(config: TaskConfig): DataConfig {
  return config;
}

test('a TaskConfig is accepted where a DataConfig is expected', () => {
  expect(typeof asDataConfig).toBe('function');
});
