/**
 * A task file or recipe read as text, or a problem that says what the path is instead: missing, a
 * folder, a link that loops or leads nowhere, a device, too large to be a task file, binary,
 * UTF-16 or not UTF-8. The size bound comes first, so no later step sees more than it.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Problem } from '../util/index.js';

/** The largest task file or recipe mft reads (a real one is a few kB). */
export const MAX_CONFIG_FILE_BYTES = 256 * 1024;

/** Which kind of file is read, as messages name it. */
export type ConfigFileKind = 'task file' | 'recipe';

/** The text of the file, or the one problem with it. */
export type ReadConfigFile = { text: string } | { problem: Problem };

/**
 * Read `file` as UTF-8 text.
 * @param file the absolute path
 * @param opts.shown the path as messages name it; opts.kind what the file should be
 * @example const r = readConfigFile('/home/u/task.yaml', {shown: 'task.yaml', kind: 'task file'});
 */
export function readConfigFile(file: string, opts: { shown: string; kind: ConfigFileKind }): ReadConfigFile {
  const { shown, kind } = opts;
  const problem = (message: string, fix?: string): ReadConfigFile => ({
    problem: { where: shown, message, fix },
  });
  let stats: Stats;
  let bytes: Buffer;
  try {
    stats = statSync(file);
    if (stats.isDirectory()) {
      const yaml = yamlFilesIn(file);
      return problem(
        `is a folder, expected a ${kind === 'task file' ? 'task' : 'recipe'} .yaml file`,
        yaml.length > 0 ? `give a file in it, such as ${join(shown, yaml[0]!)}` : undefined,
      );
    }
    if (!stats.isFile())
      return problem(`is ${specialKind(stats)}, not a file; a ${kind} is a YAML text file`);
    if (stats.size > MAX_CONFIG_FILE_BYTES) {
      return problem(
        `is ${sizeText(stats.size)}; a ${kind} is a few kB of key: value lines and mft reads at most ${MAX_CONFIG_FILE_BYTES / 1024} KiB`,
        'check that this is the file you meant',
      );
    }
    bytes = readFileSync(file);
  } catch (e) {
    return problem(...systemFault(e as NodeJS.ErrnoException, file, kind));
  }
  return decodeText(bytes, problem);
}

function sizeText(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

/** The message and fix for an error of stat or read. */
function systemFault(e: NodeJS.ErrnoException, file: string, kind: ConfigFileKind): [string, string?] {
  switch (e.code) {
    case 'ENOENT': {
      const target = danglingLinkTarget(file);
      return target !== undefined
        ? [`is a symbolic link to ${target}, which does not exist`, `point the link at a ${kind}`]
        : [`${kind} not found`, 'check the path'];
    }
    case 'ELOOP':
      return [
        'is a symbolic link that leads back to itself (a loop of links)',
        `point the link at a ${kind}, or give the file's own path`,
      ];
    case 'ENOTDIR':
      return ['a part of the path is a file, not a folder', 'check the path'];
    case 'EACCES':
    case 'EPERM':
      return [`cannot read the ${kind}: permission denied`, 'check its permissions (ls -l)'];
    default:
      return [`cannot read the ${kind}: ${e.message}`];
  }
}

function danglingLinkTarget(file: string): string | undefined {
  try {
    return lstatSync(file).isSymbolicLink() ? readlinkSync(file) : undefined;
  } catch {
    return undefined;
  }
}

function specialKind(s: Stats): string {
  if (s.isFIFO()) return 'a named pipe';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function yamlFilesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => /\.ya?ml$/i.test(n))
      .sort();
  } catch {
    return [];
  }
}

/** UTF-8 text (a BOM dropped), or what the bytes are instead. */
function decodeText(
  bytes: Buffer,
  problem: (message: string, fix?: string) => ReadConfigFile,
): ReadConfigFile {
  const utf16 =
    bytes.length >= 2 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff));
  if (utf16) return problem('is UTF-16 text; mft reads UTF-8', 'save it as UTF-8');
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    return problem(
      `holds binary data (a NUL byte on line ${lineOf(bytes, nul)}), not YAML text`,
      'give the path of a .yaml text file',
    );
  }
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    const bad = firstInvalidUtf8(bytes);
    return problem(`is not UTF-8 text (an invalid byte on line ${lineOf(bytes, bad)})`, 'save it as UTF-8');
  }
}

/** 1-based line of a byte offset (LF or a lone CR ends a line). */
function lineOf(bytes: Buffer, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a || (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a)) line += 1;
  }
  return line;
}

/** The offset of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstInvalidUtf8(bytes: Buffer): number {
  // Binary search on the longest valid prefix; `stream` lets a prefix end inside a sequence.
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}
