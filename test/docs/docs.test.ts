/**
 * The guide (README.md), the reference (docs/*.md) and bench/README.md stay true: every relative
 * link points at a file (and a heading) that exists, every `mft` command line in a code block names
 * a real command and real flags, and the guide's task-file examples load.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { Command } from 'commander';
import { beforeAll, describe, expect, test } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { loadTaskConfig } from '../../src/config/index.js';
import { REPO_ROOT, runCli } from '../cli/run-cli.js';
import { fileTempDir } from '../helpers/tmp-dir.js';

const PAGES = [
  'README.md',
  'bench/README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

const read = (page: string): string => readFileSync(join(REPO_ROOT, page), 'utf8');

interface Block {
  lang: string;
  lines: string[];
}

/** The page split into prose lines and fenced code blocks. */
function parse(text: string): { prose: string[]; blocks: Block[] } {
  const prose: string[] = [];
  const blocks: Block[] = [];
  let open: Block | null = null;
  for (const line of text.split('\n')) {
    const fence = /^\s*```(\S*)/.exec(line);
    if (fence) {
      if (open) {
        blocks.push(open);
        open = null;
      } else open = { lang: fence[1] ?? '', lines: [] };
    } else if (open) open.lines.push(line);
    else prose.push(line);
  }
  return { prose, blocks };
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces become hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(page: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of parse(read(page)).prose) {
    const h = /^#{1,6}\s+(.*)$/.exec(line);
    if (!h) continue;
    const base = slug(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** `[text](target)` links of the prose, without inline code spans. */
function links(page: string): string[] {
  const out: string[] = [];
  for (const line of parse(read(page)).prose) {
    const text = line.replace(/`[^`]*`/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) out.push(m[1]!);
  }
  return out;
}

describe.each(PAGES)('%s', (page) => {
  test('every relative link points at an existing file and heading', () => {
    const bad: string[] = [];
    for (const target of links(page)) {
      if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? page : relative(REPO_ROOT, join(REPO_ROOT, dirname(page), path));
      if (!existsSync(join(REPO_ROOT, file))) bad.push(`${target}: no file ${file}`);
      else if (anchor !== undefined && !anchors(file).has(anchor))
        bad.push(`${target}: no heading #${anchor} in ${file}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('command lines in code blocks', () => {
  let program: Command;
  beforeAll(async () => {
    program = await buildProgram();
  });

  const commandLines = PAGES.flatMap((page) =>
    parse(read(page)).blocks.flatMap((b) =>
      b.lines
        .map((l) => l.trim())
        .filter((l) => /^(\$ )?(npx )?mft\s/.test(l))
        .map((l) => ({ page, line: l })),
    ),
  );

  test('the pages hold command lines', () => {
    expect(commandLines.length).toBeGreaterThan(30);
  });

  test('each names a command of `mft` and only flags that command takes', () => {
    const bad: string[] = [];
    for (const { page, line } of commandLines) {
      const words = line.replace(/^(\$ )?(npx )?mft\s+/, '').split(/\s+/);
      let cmd = program;
      const path: Command[] = [program];
      for (const w of words) {
        const sub = cmd.commands.find((c) => c.name() === w);
        if (!sub) break;
        cmd = sub;
        path.push(sub);
      }
      if (cmd === program) {
        bad.push(`${page}: ${line}: no command`);
        continue;
      }
      const known = new Set(['--help', ...path.flatMap((c) => c.options.map((o) => o.long ?? ''))]);
      for (const flag of line.matchAll(/(?<=\s|\[)--[a-z][a-z0-9-]*/g)) {
        if (!known.has(flag[0])) bad.push(`${page}: ${line}: ${cmd.name()} has no ${flag[0]}`);
      }
    }
    expect(bad).toEqual([]);
  });

  test('the command table of README lists every command of `mft --help`', () => {
    const table = read('README.md').split('\n## Commands\n')[1]!.split('\n## ')[0]!;
    const listed = [...table.matchAll(/^\| `mft ([a-z]+)/gm)].map((m) => m[1]!);
    expect(listed.sort()).toEqual(program.commands.map((c) => c.name()).sort());
  });
});

describe("README's examples", () => {
  const { blocks } = parse(read('README.md'));

  test('the annotated task file is configs/code_completion.yaml as it is', () => {
    const file = read('configs/code_completion.yaml');
    expect(blocks.some((b) => b.lang === 'yaml' && `${b.lines.join('\n')}\n` === file)).toBe(true);
  });

  test('the five steps: the records and the task file load, and mft data inspect packs them', async () => {
    const dir = fileTempDir('readme');
    const records = blocks.find((b) => b.lang === 'jsonl')!;
    const task = blocks.find((b) => b.lang === 'yaml' && b.lines.some((l) => l.includes('./data/qa.jsonl')))!;
    expect(records).toBeDefined();
    expect(task).toBeDefined();
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data/qa.jsonl'), `${records.lines.join('\n')}\n`);
    writeFileSync(join(dir, 'qa.yaml'), `${task.lines.join('\n')}\n`);
    const config = await loadTaskConfig(join(dir, 'qa.yaml'), { cwd: dir });
    expect(config.fields).toMatchObject({ prompt: 'question', completion: 'answer' });
    const r = runCli(['data', 'inspect', join(dir, 'qa.yaml'), '-n', '1', '--json'], {
      env: { MFT_CACHE_DIR: join(dir, 'cache') },
    });
    expect(r.stderr).not.toMatch(/^mft: /m);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ stats: { records: 2, train: { records: 1 } } });
  }, 60_000);
});
