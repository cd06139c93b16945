/**
 * `.gitignore` matching, as git documents it (gitignore(5)):
 * - blank lines and `#` comments are skipped, `\#` and `\!` escape, trailing unescaped spaces are trimmed;
 * - `!pattern` re-includes what an earlier pattern excluded; the last matching pattern wins, and a
 *   deeper `.gitignore` wins over a shallower one;
 * - a trailing `/` matches directories only;
 * - a pattern with a `/` at its start or middle is anchored to the folder of its `.gitignore`, otherwise
 *   it matches a name at any depth below that folder;
 * - `*` and `?` never match `/`, `[...]` is a character class, `**` matches across folders.
 * A file inside an ignored folder is ignored whatever later patterns say (git never looks inside);
 * the tree walk honours that by not descending into ignored folders.
 */

interface Rule {
  /** Folder of the `.gitignore`, relative to the walk root, posix separators, '' for the root. */
  base: string;
  regex: RegExp;
  negate: boolean;
  dirOnly: boolean;
}

/** Translate one glob (already stripped of `!`, anchors and trailing `/`) into a regex source. */
function globToRegexSource(glob: string): string {
  let out = '';
  let i = 0;
  while (i < glob.length) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        const atEnd = i + 2 === glob.length || glob[i + 2] === '/';
        if (atStart && atEnd) {
          if (i + 2 === glob.length) {
            out += '.*'; // trailing `/**`: everything inside
            i += 2;
          } else {
            out += '(?:.*/)?'; // leading `**/` or middle `/**/`: zero or more folders
            i += 3;
          }
          continue;
        }
      }
      out += '[^/]*';
      i += 1;
    } else if (c === '?') {
      out += '[^/]';
      i += 1;
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) {
        out += '\\[';
        i += 1;
        continue;
      }
      let body = glob.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close + 1;
    } else if (c === '\\' && i + 1 < glob.length) {
      out += escapeRegex(glob[i + 1]!);
      i += 2;
    } else {
      out += escapeRegex(c);
      i += 1;
    }
  }
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Parse the text of one `.gitignore` found in folder `base` (relative to the walk root). */
export function parseGitignore(base: string, content: string): Rule[] {
  const rules: Rule[] = [];
  for (const rawLine of content.split(/\r?\n/)) {
    let line = rawLine;
    // Trailing spaces are ignored unless escaped with a backslash.
    while (line.endsWith(' ') && !line.endsWith('\\ ')) line = line.slice(0, -1);
    if (line === '' || line.startsWith('#')) continue;
    let negate = false;
    if (line.startsWith('!')) {
      negate = true;
      line = line.slice(1);
    } else if (line.startsWith('\\!') || line.startsWith('\\#')) {
      line = line.slice(1);
    }
    let dirOnly = false;
    if (line.endsWith('/')) {
      dirOnly = true;
      line = line.slice(0, -1);
    }
    if (line === '') continue;
    const anchored = line.includes('/');
    if (line.startsWith('/')) line = line.slice(1);
    const body = globToRegexSource(line);
    const source = anchored ? `^${body}$` : `^(?:.*/)?${body}$`;
    rules.push({ base, regex: new RegExp(source), negate, dirOnly });
  }
  return rules;
}

/** The `.gitignore` rules in force during a walk; folders add their rules as the walk enters them. */
export class GitIgnore {
  private readonly rules: Rule[] = [];

  /** Add the rules of the `.gitignore` in folder `base` ('' = walk root). Deeper files must come later. */
  add(base: string, content: string): void {
    this.rules.push(...parseGitignore(base, content));
  }

  /** Whether `relPath` (posix, relative to the walk root) is ignored; `isDir` for folders. */
  ignores(relPath: string, isDir: boolean): boolean {
    let ignored = false;
    for (const rule of this.rules) {
      if (rule.dirOnly && !isDir) continue;
      let sub: string;
      if (rule.base === '') sub = relPath;
      else if (relPath.startsWith(`${rule.base}/`)) sub = relPath.slice(rule.base.length + 1);
      else continue;
      if (rule.regex.test(sub)) ignored = !rule.negate;
    }
    return ignored;
  }
}
