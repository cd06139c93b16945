import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkVocabulary } from '../../src/model/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { REPO_ROOT } from '../cli/run-cli.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const MODEL = join(REPO_ROOT, 'checkpoints/base/tinystories-260k');
const tmp = fileTempDir('vocab');

describe('checkVocabulary', () => {
  test('a checkpoint whose vocab_size is below the tokenizer ids is refused at load, naming both files', async () => {
    const tokenizer = await loadTokenizer(MODEL);
    expect(() => checkVocabulary(MODEL, tokenizer)).not.toThrow(); // 512 ids, vocab_size 512
    const small = join(tmp, 'small-vocab');
    cpSync(MODEL, small, { recursive: true });
    const config = JSON.parse(readFileSync(join(small, 'config.json'), 'utf8'));
    writeFileSync(join(small, 'config.json'), JSON.stringify({ ...config, vocab_size: 400 }));
    const tok = await loadTokenizer(small);
    expect(() => checkVocabulary(small, tok)).toThrow(
      /small-vocab\/config\.json: vocab_size 400 is smaller than the tokenizer's 512 ids \(.*small-vocab\/tokenizer\.json\): ids 400\.\.511 have no embedding row \(fix: use the tokenizer that came with this checkpoint/,
    );
  });
});
