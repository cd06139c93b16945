export { fsyncDir, tempPathFor, writeFileAtomic } from './atomic-write.js';
export { fail, formatProblem, MftError, type Problem } from './mft-error.js';
export { mixSeed, Rng } from './rng.js';
