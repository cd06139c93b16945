/**
 * Source-code languages recognised by `mft data from-dir`, by file extension. The `lang` field of a
 * code record is one of these names; files with other extensions are not source code and are skipped.
 */
const EXTENSIONS: Record<string, string> = {
  ts: 'typescript',
  tsx: 'typescript',
  mts: 'typescript',
  cts: 'typescript',
  js: 'javascript',
  jsx: 'javascript',
  mjs: 'javascript',
  cjs: 'javascript',
  py: 'python',
  rs: 'rust',
  go: 'go',
  c: 'c',
  h: 'c',
  cc: 'cpp',
  cpp: 'cpp',
  cxx: 'cpp',
  hpp: 'cpp',
  hh: 'cpp',
  java: 'java',
  kt: 'kotlin',
  scala: 'scala',
  swift: 'swift',
  cs: 'csharp',
  rb: 'ruby',
  php: 'php',
  lua: 'lua',
  sh: 'shell',
  bash: 'shell',
  sql: 'sql',
  r: 'r',
  jl: 'julia',
  hs: 'haskell',
  ml: 'ocaml',
  ex: 'elixir',
  exs: 'elixir',
  erl: 'erlang',
  zig: 'zig',
  dart: 'dart',
};

/** Every language name `languageOf` can return, sorted. */
export const LANGUAGES: readonly string[] = [...new Set(Object.values(EXTENSIONS))].sort();

/** The language of a file from its name (`src/a.ts` -> 'typescript'), or null when it is not source code. */
export function languageOf(fileName: string): string | null {
  const base = fileName.slice(fileName.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  if (dot <= 0) return null;
  return EXTENSIONS[base.slice(dot + 1).toLowerCase()] ?? null;
}
