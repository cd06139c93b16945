import { describe, expect, test } from 'vitest';
import { GitIgnore } from '../../../src/data/from-dir/gitignore.js';

function rules(content: string, base = ''): GitIgnore {
  const g = new GitIgnore();
  g.add(base, content);
  return g;
}

describe('gitignore patterns (gitignore(5))', () => {
  test('a name without a slash matches at any depth', () => {
    const g = rules('*.log\nbuild\n');
    expect(g.ignores('a.log', false)).toBe(true);
    expect(g.ignores('src/deep/b.log', false)).toBe(true);
    expect(g.ignores('src/build', true)).toBe(true);
    expect(g.ignores('src/builder.ts', false)).toBe(false);
    expect(g.ignores('a.log.txt', false)).toBe(false);
  });

  test('a leading or middle slash anchors the pattern to the .gitignore folder', () => {
    const g = rules('/dist\ndocs/*.md\n');
    expect(g.ignores('dist', true)).toBe(true);
    expect(g.ignores('pkg/dist', true)).toBe(false);
    expect(g.ignores('docs/a.md', false)).toBe(true);
    expect(g.ignores('docs/sub/a.md', false)).toBe(false);
    expect(g.ignores('x/docs/a.md', false)).toBe(false);
  });

  test('a trailing slash matches folders only', () => {
    const g = rules('out/\n');
    expect(g.ignores('out', true)).toBe(true);
    expect(g.ignores('out', false)).toBe(false);
  });

  test('negation re-includes, the last matching pattern wins', () => {
    const g = rules('*.ts\n!keep.ts\n');
    expect(g.ignores('a.ts', false)).toBe(true);
    expect(g.ignores('src/keep.ts', false)).toBe(false);
    const h = rules('!keep.ts\n*.ts\n');
    expect(h.ignores('keep.ts', false)).toBe(true);
  });

  test('** matches across folders, ? and [] one character', () => {
    const g = rules('a/**/z.ts\nlogs/**\nfile?.txt\n[abc]x.js\n[!a]y.js\n');
    expect(g.ignores('a/z.ts', false)).toBe(true);
    expect(g.ignores('a/b/c/z.ts', false)).toBe(true);
    expect(g.ignores('logs/x/y', false)).toBe(true);
    expect(g.ignores('file1.txt', false)).toBe(true);
    expect(g.ignores('file12.txt', false)).toBe(false);
    expect(g.ignores('bx.js', false)).toBe(true);
    expect(g.ignores('dx.js', false)).toBe(false);
    expect(g.ignores('by.js', false)).toBe(true);
    expect(g.ignores('ay.js', false)).toBe(false);
  });

  test('comments, blank lines and escapes', () => {
    const g = rules('# a comment\n\n\\#hash.ts\ntrailing.ts   \n');
    expect(g.ignores('# a comment', false)).toBe(false);
    expect(g.ignores('#hash.ts', false)).toBe(true);
    expect(g.ignores('trailing.ts', false)).toBe(true);
  });

  test('rules of a nested .gitignore apply only below its folder and win over the root', () => {
    const g = new GitIgnore();
    g.add('', '*.gen.ts\n');
    g.add('pkg', '!*.gen.ts\n/local.ts\n');
    expect(g.ignores('a.gen.ts', false)).toBe(true);
    expect(g.ignores('pkg/a.gen.ts', false)).toBe(false);
    expect(g.ignores('pkg/local.ts', false)).toBe(true);
    expect(g.ignores('local.ts', false)).toBe(false);
    expect(g.ignores('pkg/sub/local.ts', false)).toBe(false);
  });
});
