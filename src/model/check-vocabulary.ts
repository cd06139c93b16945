/**
 * A tokenizer whose ids reach past the model's embedding rows would fail deep in the first forward
 * pass ("token id 403 is outside the vocabulary"); every command that loads a model and its
 * tokenizer (train, eval, generate, serve) says so at load instead, naming both files.
 */
import { join } from 'node:path';
import type { MftTokenizer } from '../tokenizer/index.js';
import { displayPath, fail } from '../util/index.js';
import { readModelSpec } from './spec.js';

/**
 * @param modelDir the model folder (its config.json gives vocab_size)
 * @param tokenizer the tokenizer loaded for it
 * @throws MftError naming config.json and tokenizer.json when the tokenizer has more ids than vocab_size
 */
export function checkVocabulary(modelDir: string, tokenizer: MftTokenizer): void {
  const spec = readModelSpec(modelDir);
  if (tokenizer.vocabSize <= spec.vocab_size) return;
  fail(
    displayPath(join(modelDir, 'config.json')),
    `vocab_size ${spec.vocab_size} is smaller than the tokenizer's ${tokenizer.vocabSize} ids (${displayPath(join(tokenizer.dir, 'tokenizer.json'))}): ids ${spec.vocab_size}..${tokenizer.vocabSize - 1} have no embedding row`,
    'use the tokenizer that came with this checkpoint, or a checkpoint whose vocab_size covers the tokenizer',
  );
}
