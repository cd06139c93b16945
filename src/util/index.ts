export { fsyncPath, tempPathFor, writeFileAtomic } from './atomic-write.js';
export { displayPath } from './display-path.js';
export { jsonOutput, snakeCase, snakeCaseKeys } from './json-output.js';
export { fail, formatProblem, MftError, type Problem } from './mft-error.js';
export { mixSeed, Rng } from './rng.js';
export { asUserFileError } from './system-error.js';
