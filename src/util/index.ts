export { fsyncPath, tempPathFor, writeFileAtomic } from './atomic-write.js';
export { displayPath } from './display-path.js';
export { formatBytes } from './format-bytes.js';
export { jsonOutput, snakeCase, snakeCaseKeys } from './json-output.js';
export {
  type FilePosition,
  fail,
  formatProblem,
  formatWhere,
  MftError,
  type Problem,
  type Where,
} from './mft-error.js';
export { mixSeed, Rng } from './rng.js';
export { asUserFileError } from './system-error.js';
