import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { fileTempDir } from '../helpers/tmp-dir.js';
import { REPO_ROOT, runCli } from './run-cli.js';

const MODEL = 'checkpoints/base/tinystories-260k';
// "Once upon a time" is how llama2.c's run.c greedy story starts: ids 403 407 261 378
// (test/fixtures/stories260K/greedy_t0_n256_noprompt.ids.txt), after BOS = 1.
const ONCE = [403, 407, 261, 378];

const tmp = fileTempDir('tokenize');

describe('mft tokenize', () => {
  test('--text prints one JSON array of ids (with BOS) and nothing else', () => {
    const r = runCli(['tokenize', '--model', MODEL, '--text', 'Once upon a time']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify([1, ...ONCE])}\n`);
    expect(r.stderr).toBe('');
  });

  test('--file is read byte-exact (whitespace, blank lines, a BOM kept); --no-special leaves BOS out', async () => {
    const text = '\uFEFF  Once upon a time\n\n\t ';
    const file = join(tmp, 'story.txt');
    writeFileSync(file, text, 'utf8');
    const r = runCli(['tokenize', '--model', MODEL, '--file', file, '--no-special']);
    expect(r.status).toBe(0);
    const ids = JSON.parse(r.stdout) as number[];
    const tok = await loadTokenizer(MODEL);
    expect(ids).toEqual(tok.encode(text, { addSpecialTokens: false }));
    // Metaspace puts '▁' first; tok512's byte pieces <0x00>..<0xFF> are ids 3..258, and the
    // BOM's bytes are EF BB BF.
    expect(ids.slice(0, 4)).toEqual([tok.tokenToId('▁'), 3 + 0xef, 3 + 0xbb, 3 + 0xbf]);
    expect(ids).not.toContain(1);
    expect(ids).not.toEqual(tok.encode(text.trim(), { addSpecialTokens: false }));
    expect(tok.decode(ids)).toBe(text);
  });

  test('--decode prints the text of ids (a JSON array or comma-separated), the inverse of --text', () => {
    const json = runCli(['tokenize', '--model', MODEL, '--decode', JSON.stringify([1, ...ONCE])]);
    expect(json.status).toBe(0);
    expect(json.stdout).toBe('<s> Once upon a time\n'); // as transformers' decode(skip_special_tokens=False)
    const noSpecial = runCli([
      'tokenize',
      '--model',
      MODEL,
      '--decode',
      JSON.stringify([1, ...ONCE]),
      '--no-special',
    ]);
    expect(noSpecial.stdout).toBe('Once upon a time\n');
    const commas = runCli(['tokenize', '--model', MODEL, '--decode', ONCE.join(',')]);
    expect(commas.stdout).toBe('Once upon a time\n');
    const bad = runCli(['tokenize', '--model', MODEL, '--decode', '1,99999']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--decode: item 2: 99999 is not a token id of this tokenizer \(0\.\.511\)/);
    const notJson = runCli(['tokenize', '--model', MODEL, '--decode', '[1,']);
    expect(notJson.status).toBe(2);
    expect(notJson.stderr).toContain('--decode: is not a JSON array');
  });

  test('user mistakes exit 2 with the place and the fix', () => {
    const both = runCli(['tokenize', '--model', MODEL, '--text', 'a', '--file', 'b']);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/mft tokenize: give exactly one of --text, --file and --decode/);
    expect(both.stdout).toBe('');

    const noTok = runCli(['tokenize', '--model', tmp, '--text', 'a']);
    expect(noTok.status).toBe(2);
    expect(noTok.stderr).toContain(`mft: ${tmp}: no tokenizer.json in this folder (fix:`);

    const bad = join(tmp, 'latin1.txt');
    writeFileSync(bad, Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    const notUtf8 = runCli(['tokenize', '--model', MODEL, '--file', bad]);
    expect(notUtf8.status).toBe(2);
    expect(notUtf8.stderr).toContain(`${bad}: is not valid UTF-8`);

    const missing = runCli(['tokenize', '--model', MODEL, '--file', join(tmp, 'nope.txt')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/nope\.txt: cannot read --file: ENOENT/);
  });

  test('the tokenize command does not load tfjs (no import of @tensorflow in its module graph)', () => {
    const seen = new Set<string>();
    const external = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else external.add(spec);
      }
      for (const m of src.matchAll(/import\(\s*'([^']+)'\s*\)/g)) external.add(m[1]!);
    };
    visit(join(REPO_ROOT, 'src/cli/tokenize.ts'));
    expect(seen.size).toBeGreaterThan(2);
    expect([...external].filter((s) => s.startsWith('@tensorflow'))).toEqual([]);
    expect(external.has('@huggingface/tokenizers')).toBe(true);
  });
});
