import { expectTypeOf, test } from 'vitest';
import type { TaskConfig } from '../../src/config/index.js';
import type { DataConfig } from '../../src/data/types.js';

// buildDataset takes the slice of the task configuration it reads; a full TaskConfig must fit it.
// expectTypeOf is checked by the type checker (npm run typecheck), not at run time.
test('a TaskConfig is accepted where a DataConfig is expected', () => {
  expectTypeOf<TaskConfig>().toExtend<DataConfig>();
});
