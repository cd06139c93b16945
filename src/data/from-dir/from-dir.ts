/**
 * `mft data from-dir`: turn a source tree into a code dataset of `{text, path, lang}` records.
 *
 * The walk respects `.gitignore` files, never enters `node_modules`, `.git` or other dot-folders,
 * and skips files that are not source code, binaries (a NUL byte or invalid UTF-8), large files,
 * generated files (a generated-code marker in a comment on the first lines, or minified long lines) and empty files.
 * Exact duplicates (same bytes) are kept once. The train/validation split is by file: each path gets
 * a rank from a seeded hash of its name and the lowest ranks go to validation, so adding a file does
 * not move the others. The output is deterministic: the same tree gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fail, writeFileAtomic } from '../../util/index.js';
import { GitIgnore } from './gitignore.js';
import { LANGUAGES, languageOf } from './languages.js';

/** One record of a code dataset. */
export interface CodeRecord {
  text: string;
  /** Path relative to the source folder, `/`-separated. */
  path: string;
  lang: string;
}

export interface FromDirOptions {
  /** The source tree to read. */
  dir: string;
  /** The dataset folder to write (`train.jsonl`, `validation.jsonl`, `README.md`). */
  out: string;
  /** Keep only these languages (names from `LANGUAGES`); default: every recognised language. */
  langs?: string[];
  /** Fraction of files that go to validation, 0 to 1 (default 0.1). */
  valFraction?: number;
  /** Seed of the split (default 0). */
  seed?: number;
  /** Files larger than this many bytes are skipped (default 1 MiB). */
  maxBytes?: number;
  /** The command the README names for regenerating the dataset. */
  readmeCommand?: string;
  /** Replace a dataset an earlier `mft data from-dir` wrote in `out` (nothing else is ever deleted). */
  overwrite?: boolean;
}

/** The files `mft data from-dir` writes, and the first line of its README (how it knows its own). */
const DATASET_FILES = new Set(['train.jsonl', 'validation.jsonl', 'README.md']);
const README_MARK = '# Code dataset built by `mft data from-dir`';

/**
 * An existing `--out` must be empty, or hold a dataset from-dir wrote and `overwrite` (as mft train
 * treats its output_dir): the user's own files there are never replaced.
 */
function checkOutFolder(out: string, shown: string, opts: { overwrite: boolean }): void {
  const { overwrite } = opts;
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) fail('--out', `${shown} is a file, not a folder`, 'choose a new folder');
  const entries = readdirSync(out);
  if (entries.length === 0) return;
  const foreign = entries.filter((n) => !DATASET_FILES.has(n));
  const readme = join(out, 'README.md');
  const ours = existsSync(readme) && readFileSync(readme, 'utf8').startsWith(README_MARK);
  if (foreign.length > 0 || !ours) {
    const listed = foreign.length > 0 ? foreign : entries;
    const has = `${listed.slice(0, 3).join(', ')}${listed.length > 3 ? ', ...' : ''}`;
    fail(
      '--out',
      `${shown} is not empty and does not hold a dataset mft data from-dir wrote (it has ${has})`,
      'choose a new or empty --out folder',
    );
  }
  if (!overwrite) {
    fail(
      '--out',
      `${shown} already holds a dataset from mft data from-dir`,
      '--overwrite to replace it, or choose another --out',
    );
  }
}

export type SkipReason = 'not source code' | 'binary' | 'too large' | 'generated' | 'empty' | 'duplicate';

export interface FromDirReport {
  out: string;
  train: number;
  validation: number;
  bytes: number;
  skipped: Record<SkipReason, number>;
  /** sha256 of `train.jsonl` followed by `validation.jsonl`. */
  contentHash: string;
  languages: Record<string, number>;
}

const ALWAYS_SKIPPED_DIRS = new Set(['node_modules', '.git']);
// A generated-code marker in a comment on one of the first lines (`// @generated`, `# DO NOT EDIT`).
const GENERATED_MARKER =
  /^\s*(?:\/\/|#|\/\*|\*|<!--|--).*(?:@generated|DO NOT EDIT|[Aa]uto-?generated|[Gg]enerated by)/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Why a file is not used, or null when it is a usable source file. */
export function classifyFile(name: string, bytes: Uint8Array, maxBytes: number): SkipReason | null {
  if (bytes.length > maxBytes) return 'too large';
  const head = bytes.subarray(0, 8000);
  if (head.includes(0)) return 'binary';
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return 'binary';
  }
  if (text.trim() === '') return 'empty';
  if (/\.min\.[a-z]+$/.test(name)) return 'generated';
  const lines = text.split('\n');
  if (lines.slice(0, 5).some((l) => GENERATED_MARKER.test(l))) return 'generated';
  const longest = lines.reduce((m, l) => Math.max(m, l.length), 0);
  if (longest > 1000 || text.length / lines.length > 200) return 'generated';
  return null;
}

/** List candidate files under `root` (posix paths relative to it), honouring `.gitignore` files. */
export function walkSourceTree(root: string, exclude: string[] = []): string[] {
  const ignore = new GitIgnore();
  const files: string[] = [];
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : join(root, rel);
    const gitignorePath = join(abs, '.gitignore');
    if (existsSync(gitignorePath)) ignore.add(rel, readFileSync(gitignorePath, 'utf8'));
    const entries = readdirSync(abs, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const entry of entries) {
      const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        if (ALWAYS_SKIPPED_DIRS.has(entry.name) || entry.name.startsWith('.')) continue;
        if (exclude.includes(childRel) || ignore.ignores(childRel, true)) continue;
        visit(childRel);
      } else if (entry.isFile()) {
        if (!ignore.ignores(childRel, false)) files.push(childRel);
      }
      // Symbolic links and special files are not followed: they could leave the tree or loop.
    }
  };
  visit('');
  return files;
}

/** Rank of a path in the split: lower ranks go to validation. */
function splitRank(seed: number, path: string): string {
  return createHash('sha256').update(`${seed}\0${path}`).digest('hex');
}

/** sha256 (hex) of a dataset folder's `train.jsonl` followed by its `validation.jsonl` (when present). */
export function datasetContentHash(dir: string): string {
  const h = createHash('sha256');
  for (const name of ['train.jsonl', 'validation.jsonl']) {
    const p = join(dir, name);
    if (existsSync(p)) h.update(readFileSync(p));
  }
  return h.digest('hex');
}

/** Build a code dataset from a source tree; see the module comment for what is kept. */
export function buildCodeDataset(opts: FromDirOptions): FromDirReport {
  const root = resolve(opts.dir);
  const out = resolve(opts.out);
  const valFraction = opts.valFraction ?? 0.1;
  const seed = opts.seed ?? 0;
  const maxBytes = opts.maxBytes ?? 1 << 20;
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    fail(opts.dir, 'not a folder', 'give the root of a source tree');
  }
  if (!(valFraction >= 0 && valFraction < 1)) {
    fail('--val-fraction', `expected a number in [0, 1), got ${valFraction}`);
  }
  for (const lang of opts.langs ?? []) {
    if (!LANGUAGES.includes(lang)) {
      fail('--lang', `unknown language "${lang}"`, `use one of ${LANGUAGES.join(', ')}`);
    }
  }
  checkOutFolder(out, opts.out, { overwrite: opts.overwrite === true });
  // Never read the output folder back in (it may sit inside the tree).
  const outRel = relative(root, out).split(sep).join('/');
  const files = walkSourceTree(root, outRel.startsWith('..') ? [] : [outRel]);

  const skipped: Record<SkipReason, number> = {
    'not source code': 0,
    binary: 0,
    'too large': 0,
    generated: 0,
    empty: 0,
    duplicate: 0,
  };
  const seen = new Set<string>();
  const records: CodeRecord[] = [];
  for (const path of files) {
    const lang = languageOf(path);
    if (lang === null || (opts.langs && !opts.langs.includes(lang))) {
      skipped['not source code'] += 1;
      continue;
    }
    const abs = join(root, path);
    if (statSync(abs).size > maxBytes) {
      skipped['too large'] += 1;
      continue;
    }
    const bytes = readFileSync(abs);
    const reason = classifyFile(path, bytes, maxBytes);
    if (reason) {
      skipped[reason] += 1;
      continue;
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (seen.has(digest)) {
      skipped.duplicate += 1;
      continue;
    }
    seen.add(digest);
    records.push({ text: bytes.toString('utf8'), path, lang });
  }
  if (records.length === 0) {
    fail(opts.dir, 'no source files found', 'check the folder, --lang and the .gitignore files');
  }

  const nVal =
    records.length < 2 ? 0 : Math.min(records.length - 1, Math.round(valFraction * records.length));
  const ranked = [...records].sort((a, b) => (splitRank(seed, a.path) < splitRank(seed, b.path) ? -1 : 1));
  const valPaths = new Set(ranked.slice(0, nVal).map((r) => r.path));
  const train = records.filter((r) => !valPaths.has(r.path));
  const validation = records.filter((r) => valPaths.has(r.path));

  mkdirSync(out, { recursive: true });
  const toJsonl = (rs: CodeRecord[]) => rs.map((r) => `${JSON.stringify(r)}\n`).join('');
  writeFileAtomic(join(out, 'train.jsonl'), toJsonl(train));
  writeFileAtomic(join(out, 'validation.jsonl'), toJsonl(validation));
  const languages: Record<string, number> = {};
  for (const r of records) languages[r.lang] = (languages[r.lang] ?? 0) + 1;
  const report: FromDirReport = {
    out,
    train: train.length,
    validation: validation.length,
    bytes: records.reduce((s, r) => s + Buffer.byteLength(r.text), 0),
    skipped,
    contentHash: datasetContentHash(out),
    languages,
  };
  const command =
    opts.readmeCommand ??
    `mft data from-dir ${opts.dir} --out ${opts.out}` +
      (opts.langs ? ` --lang ${opts.langs.join(',')}` : '') +
      ` --val-fraction ${valFraction} --seed ${seed}`;
  writeFileAtomic(join(out, 'README.md'), datasetReadme(report, command, { valFraction, seed, maxBytes }));
  return report;
}

function datasetReadme(
  r: FromDirReport,
  command: string,
  settings: { valFraction: number; seed: number; maxBytes: number },
): string {
  const langs = Object.entries(r.languages)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const skipped = Object.entries(r.skipped)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return `${README_MARK}

Records \`{"text", "path", "lang"}\`, one source file each, in \`train.jsonl\` (${r.train} files)
and \`validation.jsonl\` (${r.validation} files); ${r.bytes} bytes of source (${langs}).
The split is by file (validation fraction ${settings.valFraction}, seed ${settings.seed}).
Skipped: ${skipped || 'nothing'} (files over ${settings.maxBytes} bytes count as too large).

Content hash (sha256 of \`train.jsonl\` followed by \`validation.jsonl\`):

    ${r.contentHash}

Quote this hash beside any figure measured on this dataset. The files are a snapshot: regenerate
them only on purpose, with

    ${command}

which rewrites both files and this README (and so the hash, when the sources changed).
`;
}
