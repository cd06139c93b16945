/**
 * A YAML mapping read with the position of every key and value, so that each problem can be
 * reported compiler-style as `file:line:col`. Syntax errors, a second document, duplicate keys at
 * any depth, keys that are not plain names, merge keys and collections too large or too deep for a
 * task file are problems too; all of them are collected, none is thrown.
 *
 * Aliases are resolved as PyYAML (and so axolotl) resolves them: `lora_alpha: *r` after
 * `lora_r: &r 16` is 16. Their expansion is bounded (yaml's `maxAliasCount`), so an alias bomb is
 * a problem, not a hang. A carriage return alone ends a line, as YAML 1.2 says (old Mac files).
 */
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseAllDocuments,
  Scalar,
  type YAMLMap,
} from 'yaml';
import type { FilePosition, Problem } from '../util/index.js';
import { keyPath, showValue } from './check-value.js';

/** Keys of one mapping, or items of one list, that a file may hold (a task file needs about 60). */
export const MAX_COLLECTION_ITEMS = 1000;
/** Levels of nesting a file may have (a task file needs two: `fields:` and its entries). */
export const MAX_NESTING = 32;
/** Aliases (`*name`) a file may hold. */
export const MAX_ALIASES = 100;
/** How far one value's aliases may expand: yaml's `maxAliasCount` (its default). */
const MAX_ALIAS_EXPANSION = 100;

/** One `key: value` of a mapping. */
export interface YamlEntry {
  key: string;
  /** The value as plain JS (YAML 1.2 core schema: `2e-4` is a number, `yes` a string), aliases resolved. */
  value: unknown;
  keyPos: FilePosition;
  /** The value's node, to find nested positions (`fields.text`, `lora_target_modules[1]`). */
  node: Node | null;
}

/** The entries of a mapping (first occurrence of each key), in document order. */
export interface YamlMapping {
  /** The file as it is named in messages. */
  file: string;
  entries: YamlEntry[];
  problems: Problem[];
  /** False when the text could not be read as a mapping at all (syntax error, not a mapping, too large). */
  ok: boolean;
  /** The position of a key's value, or of the element at `path` inside it. */
  where(entry: YamlEntry, path?: readonly PropertyKey[]): FilePosition;
  /** The position of a key itself. */
  whereKey(entry: YamlEntry): FilePosition;
  /** The position of a character offset in the file. */
  at(offset: number): FilePosition;
  /** The plain JS value of a node of this file, aliases resolved (throws yaml's ReferenceError on a bomb). */
  toValue(node: Node): unknown;
}

// A CR not followed by LF: one character replaced by one keeps every offset, so positions stay right.
const LONE_CR = /\r(?!\n)/g;

/** Parse `text` (the contents of `file`) as a YAML mapping of plain keys to values. */
export function readYamlMapping(text: string, file: string): YamlMapping {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text.replace(LONE_CR, '\n'), {
    lineCounter,
    uniqueKeys: false,
    prettyErrors: false,
  });
  const doc = docs[0];
  const m = emptyMapping(file, lineCounter, doc);
  if (docs.length > 1) {
    m.problems.push({
      where: m.at(docs[1]!.range[0]),
      message: `the file holds ${docs.length} YAML documents (a --- line starts each); mft reads one per file`,
      fix: 'remove the --- line, or give each document its own file',
    });
    return { ...m, ok: false };
  }
  if (!doc) return m;
  // One syntax error per place: the parser often reports a second, consequential one there.
  const places = new Set<string>();
  for (const e of [...doc.errors, ...doc.warnings]) {
    const where = m.at(e.pos[0]);
    const place = `${where.line}:${where.col}`;
    if (places.has(place)) continue;
    places.add(place);
    m.problems.push({ where, message: syntaxMessage(e.message) });
  }
  if (m.problems.length > 0) return { ...m, ok: false };
  const root = doc.contents;
  if (root && !checkTree(m, root)) return { ...m, ok: false };
  return fillFrom(m, root, '');
}

/**
 * The entries of a nested mapping (a recipe's `defaults:`), positioned in the same file;
 * a value that is neither a mapping nor empty is a problem. Its duplicate keys were reported
 * with the file.
 */
export function nestedMapping(parent: YamlMapping, entry: YamlEntry): YamlMapping {
  const m: YamlMapping = { ...parent, entries: [], problems: [], ok: true };
  if (entry.node !== null && !isMap(entry.node) && !isNull(entry.node)) {
    m.problems.push({
      where: parent.where(entry),
      message: `${entry.key}: expected a mapping of key: value`,
    });
    return { ...m, ok: false };
  }
  return fillFrom(m, entry.node, entry.key);
}

function emptyMapping(file: string, lineCounter: LineCounter, doc: Document | undefined): YamlMapping {
  const at = (offset: number): FilePosition => ({ file, ...lineCounter.linePos(offset) });
  const whereKey = (e: YamlEntry): FilePosition => e.keyPos;
  const where = (e: YamlEntry, path: readonly PropertyKey[] = []): FilePosition => {
    const node = e.node && !isNull(e.node) ? descend(e.node, path) : null;
    return node?.range ? at(node.range[0]) : whereKey(e);
  };
  const toValue = (node: Node): unknown =>
    doc ? node.toJS(doc, { maxAliasCount: MAX_ALIAS_EXPANSION }) : node.toJSON();
  return { file, entries: [], problems: [], ok: true, where, whereKey, at, toValue };
}

function isNull(node: Node): boolean {
  return isScalar(node) && node.value === null && node.range?.[0] === node.range?.[1];
}

function fillFrom(m: YamlMapping, root: Node | null, what: string): YamlMapping {
  if (root === null || isNull(root) || (isScalar(root) && root.value === null)) return m;
  if (!isMap(root)) {
    const kind = isSeq(root)
      ? 'a list'
      : isAlias(root)
        ? `an alias (*${root.source})`
        : `the value ${showValue(root.toJSON())}`;
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
  const seen = new Set<string>();
  for (const pair of map.items) {
    const keyNode = pair.key as Node | null;
    const keyOffset = keyNode?.range?.[0] ?? (pair.value as Node | null)?.range?.[0] ?? 0;
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string' || keyNode.value === '') {
      const shown = !keyNode
        ? 'nothing'
        : isAlias(keyNode)
          ? `an alias (*${keyNode.source})`
          : JSON.stringify(keyNode.toJSON());
      m.problems.push({ where: m.at(keyOffset), message: `expected a key name, got ${shown}` });
      continue;
    }
    const key = keyNode.value;
    // A duplicate was reported by checkTree; the first one counts.
    if (seen.has(key) || isMergeKey(keyNode)) continue;
    seen.add(key);
    const node = (pair.value as Node | null) ?? null;
    let value: unknown = null;
    if (node) {
      try {
        value = m.toValue(node);
      } catch (e) {
        if (!(e instanceof ReferenceError)) throw e;
        // The only alias fault left after checkTree: an expansion past the bound.
        m.problems.push({
          where: m.at(node.range?.[0] ?? keyOffset),
          message: `${key}: its aliases expand too far (an alias bomb?); mft follows at most ${MAX_ALIAS_EXPANSION} in one value`,
          fix: 'write the value out',
        });
        continue;
      }
    }
    m.entries.push({ key, value, keyPos: m.at(keyOffset), node });
  }
}

/**
 * The problems of the document's shape, in one pass over its nodes (aliases are not followed, so
 * the pass is linear): duplicate keys in any mapping, merge keys, aliases with no anchor before
 * them or inside the value they name, and more items, nesting or aliases than a task file can
 * need. False when the file is too large to go on with: every later step is bounded by these.
 */
function checkTree(m: YamlMapping, root: Node): boolean {
  const defined = new Map<string, Node>();
  const open = new Set<Node>();
  let aliases = 0;
  let fits = true;
  let aliasFault = false;
  const problem = (node: Node, path: readonly PropertyKey[], message: string, fix?: string) => {
    const label = path.length > 0 ? `${keyPath(String(path[0]), path.slice(1))}: ` : '';
    m.problems.push({ where: m.at(node.range?.[0] ?? 0), message: label + message, fix });
  };
  const visit = (node: Node, path: PropertyKey[]): void => {
    if (!fits) return;
    if (isAlias(node)) {
      const name = node.source;
      const target = defined.get(name);
      // Both make the value unusable (PyYAML refuses them too): the file stops after this pass.
      if (!target || open.has(target)) aliasFault = true;
      if (!target) {
        problem(
          node,
          path,
          `*${name} names no anchor above it`,
          `put &${name} on a value above it, or write the value out`,
        );
      } else if (open.has(target)) {
        problem(node, path, `*${name} is inside the value &${name} that it names`, 'write the value out');
      }
      aliases += 1;
      if (aliases > MAX_ALIASES) {
        problem(node, [], `the file holds more than ${MAX_ALIASES} aliases`, 'write the values out');
        fits = false;
      }
      return;
    }
    if (node.anchor) defined.set(node.anchor, node);
    if (!isMap(node) && !isSeq(node)) return;
    if (path.length >= MAX_NESTING) {
      problem(node, path, `nested more than ${MAX_NESTING} levels deep`, 'a task file needs two levels');
      fits = false;
      return;
    }
    const n = node.items.length;
    if (n > MAX_COLLECTION_ITEMS) {
      const [items, kind] = isMap(node) ? ['keys', 'mapping'] : ['items', 'list'];
      problem(
        node,
        path,
        `${path.length > 0 ? '' : 'the file '}holds ${n} ${items}; mft reads at most ${MAX_COLLECTION_ITEMS} in one ${kind}`,
        `keep at most ${MAX_COLLECTION_ITEMS} (a task file needs a few dozen)`,
      );
      fits = false;
      return;
    }
    open.add(node);
    if (isMap(node)) {
      const seen = new Map<string, FilePosition>();
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        const value = pair.value as Node | null;
        let name: string | undefined;
        if (isScalar(key)) {
          name = String(key.value);
          const at = m.at(key.range?.[0] ?? 0);
          const first = seen.get(name);
          if (isMergeKey(key)) {
            problem(key, [...path, name], 'YAML merge keys are not supported', 'write the keys out');
          } else if (first) {
            problem(
              key,
              [...path, name],
              `duplicate key (first at line ${first.line}, column ${first.col})`,
              'keep one of them',
            );
          } else {
            seen.set(name, at);
          }
        }
        if (key) visit(key, path);
        if (value) visit(value, name === undefined ? path : [...path, name]);
      }
    } else {
      node.items.forEach((item, i) => {
        if (item) visit(item as Node, [...path, i]);
      });
    }
    open.delete(node);
  };
  visit(root, []);
  return fits && !aliasFault;
}

/** `<<: *base`, which YAML 1.1 (PyYAML) merges and YAML 1.2 does not have. */
function isMergeKey(key: Scalar): boolean {
  return key.value === '<<' && key.type === Scalar.PLAIN;
}

/** The node at `path` below `node` (map keys and list indices), or the deepest one that exists. */
function descend(node: Node, path: readonly PropertyKey[]): Node {
  let cur: Node = node;
  for (const seg of path) {
    let next: Node | null = null;
    if (isMap(cur)) {
      const pair = pairByKey(cur, String(seg));
      next = (pair?.value as Node | null) ?? (pair?.key as Node | null) ?? null;
    } else if (isSeq(cur) && typeof seg === 'number') {
      next = (cur.items[seg] as Node | undefined) ?? null;
    }
    if (!next) break;
    cur = next;
  }
  return cur;
}

// Each mapping's pairs by key, built on first use, so placing one problem per key stays linear.
const pairIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

function pairByKey(map: YAMLMap, key: string): Pair | undefined {
  let index = pairIndex.get(map);
  if (!index) {
    index = new Map();
    for (const p of map.items) {
      if (!isPair(p) || !isScalar(p.key)) continue;
      const k = String(p.key.value);
      if (!index.has(k)) index.set(k, p as Pair);
    }
    pairIndex.set(map, index);
  }
  return index.get(key);
}

/** `yaml`'s messages end with " at line L, column C:" and a code excerpt; keep the sentence. */
function syntaxMessage(message: string): string {
  // yaml reports its own stack overflow on very deep nesting as an error.
  if (message.startsWith('Maximum call stack size exceeded'))
    return 'YAML syntax error: nested too deeply to read';
  const cut = message.search(/ at line \d+, column \d+/);
  return `YAML syntax error: ${(cut >= 0 ? message.slice(0, cut) : message.split('\n')[0]!).trim()}`;
}
