/**
 * The model's tokenizer, loaded the first time something needs it. Evaluating pre-tokenized data
 * needs none, so a model folder without tokenizer files (like test/fixtures/llama-golden) works;
 * when text does need tokenizing there, the error says what needed it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkVocabulary } from '../model/index.js';
import { loadTokenizer, type MftTokenizer } from '../tokenizer/index.js';
import { MftError } from '../util/index.js';

export class LazyTokenizer {
  private tokenizer: MftTokenizer | null = null;

  /** @param dir the model folder (tokenizer.json and tokenizer_config.json) */
  constructor(readonly dir: string) {}

  /** The tokenizer if it has been loaded, else null (never loads). */
  get loaded(): MftTokenizer | null {
    return this.tokenizer;
  }

  /**
   * The tokenizer, loaded now if needed.
   * @param reason what needs it, for the error (`data/x.jsonl:3 is text`)
   * @throws MftError when the model folder has no tokenizer.json, or its tokenizer has ids past vocab_size
   */
  async get(reason: string): Promise<MftTokenizer> {
    if (this.tokenizer) return this.tokenizer;
    if (!existsSync(join(this.dir, 'tokenizer.json'))) {
      throw new MftError({
        where: this.dir,
        message: `no tokenizer.json in the model folder, and ${reason}, which needs tokenizing`,
        fix: 'use a model folder with its tokenizer files, or pre-tokenized data (one {"input_ids": [...]} per line)',
      });
    }
    const tokenizer = await loadTokenizer(this.dir);
    checkVocabulary(this.dir, tokenizer);
    this.tokenizer = tokenizer;
    return tokenizer;
  }
}
