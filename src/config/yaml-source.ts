/**
 * A YAML mapping read with the position of every key and value, so that each problem can be
 * reported compiler-style as `file:line:col`. Syntax errors, duplicate keys and keys that are not
 * plain names are problems too; all of them are collected, none is thrown.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import type { Problem } from '../util/index.js';

/** A 1-based line and column. */
export interface Pos {
  line: number;
  col: number;
}

/** One `key: value` of a mapping. */
export interface YamlEntry {
  key: string;
  /** The value as plain JS (YAML 1.2 core schema: `2e-4` is a number, `yes` a string). */
  value: unknown;
  keyPos: Pos;
  /** The value's node, to find nested positions (`fields.text`, `lora_target_modules[1]`). */
  node: Node | null;
}

/** The entries of a mapping (first occurrence of each key), in document order. */
export interface YamlMapping {
  /** The file as it is named in messages. */
  file: string;
  entries: YamlEntry[];
  problems: Problem[];
  /** False when the text could not be read as a mapping at all (syntax error, not a mapping). */
  ok: boolean;
  /** `file:line:col` of a key's value, or of the element at `path` inside it. */
  where(entry: YamlEntry, path?: readonly PropertyKey[]): string;
  /** `file:line:col` of a key itself. */
  whereKey(entry: YamlEntry): string;
  /** `file:line:col` of a character offset in the file. */
  at(offset: number): string;
  lineCounter: LineCounter;
}

/** Parse `text` (the contents of `file`) as a YAML mapping of plain keys to values. */
export function readYamlMapping(text: string, file: string): YamlMapping {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const m = emptyMapping(file, lineCounter);
  // One syntax error per place: the parser often reports a second, consequential one there.
  const places = new Set<string>();
  for (const e of [...doc.errors, ...doc.warnings]) {
    const where = m.at(e.pos[0]);
    if (places.has(where)) continue;
    places.add(where);
    m.problems.push({ where, message: `YAML syntax error: ${firstSentence(e.message)}` });
  }
  if (m.problems.length > 0) return { ...m, ok: false };
  return fillFrom(m, doc.contents, '');
}

/**
 * The entries of a nested mapping (a recipe's `defaults:`), positioned in the same file;
 * a value that is neither a mapping nor empty is a problem.
 */
export function nestedMapping(parent: YamlMapping, entry: YamlEntry): YamlMapping {
  const m = emptyMapping(parent.file, parent.lineCounter);
  if (entry.node !== null && !isMap(entry.node) && !isNull(entry.node)) {
    m.problems.push({
      where: parent.where(entry),
      message: `${entry.key}: expected a mapping of key: value`,
    });
    return { ...m, ok: false };
  }
  return fillFrom(m, entry.node, entry.key);
}

function emptyMapping(file: string, lineCounter: LineCounter): YamlMapping {
  const at = (offset: number): string => {
    const p = lineCounter.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  const whereKey = (e: YamlEntry): string => `${file}:${e.keyPos.line}:${e.keyPos.col}`;
  const where = (e: YamlEntry, path: readonly PropertyKey[] = []): string => {
    const node = e.node && !isNull(e.node) ? descend(e.node, path) : null;
    return node?.range ? at(node.range[0]) : whereKey(e);
  };
  return { file, entries: [], problems: [], ok: true, where, whereKey, at, lineCounter };
}

function isNull(node: Node): boolean {
  return isScalar(node) && node.value === null && node.range?.[0] === node.range?.[1];
}

function fillFrom(m: YamlMapping, root: Node | null, what: string): YamlMapping {
  if (root === null || isNull(root) || (isScalar(root) && root.value === null)) return m;
  if (!isMap(root)) {
    const kind = isSeq(root) ? 'a list' : `the value ${JSON.stringify(root.toJSON())}`;
    m.problems.push({
      where: m.at(root.range?.[0] ?? 0),
      message: `${what ? `${what}: ` : ''}expected key: value lines, got ${kind}`,
    });
    return { ...m, ok: false };
  }
  collectEntries(m, root);
  return m;
}

function collectEntries(m: YamlMapping, map: YAMLMap): void {
  const seen = new Map<string, Pos>();
  for (const pair of map.items) {
    const keyNode = pair.key as Node | null;
    const keyOffset = keyNode?.range?.[0] ?? (pair.value as Node | null)?.range?.[0] ?? 0;
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string' || keyNode.value === '') {
      const shown = keyNode ? JSON.stringify(keyNode.toJSON()) : 'nothing';
      m.problems.push({ where: m.at(keyOffset), message: `expected a key name, got ${shown}` });
      continue;
    }
    const key = keyNode.value;
    const keyPos = m.lineCounter.linePos(keyOffset);
    const first = seen.get(key);
    if (first) {
      m.problems.push({
        where: m.at(keyOffset),
        message: `${key}: duplicate key (first at line ${first.line}, column ${first.col})`,
        fix: 'keep one of them',
      });
      continue;
    }
    seen.set(key, keyPos);
    const node = (pair.value as Node | null) ?? null;
    m.entries.push({ key, value: node ? node.toJSON() : null, keyPos, node });
  }
}

/** The node at `path` below `node` (map keys and list indices), or the deepest one that exists. */
function descend(node: Node, path: readonly PropertyKey[]): Node {
  let cur: Node = node;
  for (const seg of path) {
    let next: Node | null = null;
    if (isMap(cur)) {
      const pair = cur.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      next = (pair?.value as Node | null) ?? (pair?.key as Node | null) ?? null;
    } else if (isSeq(cur) && typeof seg === 'number') {
      next = (cur.items[seg] as Node | undefined) ?? null;
    }
    if (!next) break;
    cur = next;
  }
  return cur;
}

/** `yaml`'s messages end with " at line L, column C:" and a code excerpt; keep the sentence. */
function firstSentence(message: string): string {
  const cut = message.search(/ at line \d+, column \d+/);
  return (cut >= 0 ? message.slice(0, cut) : message.split('\n')[0]!).trim();
}
