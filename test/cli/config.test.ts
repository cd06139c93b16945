import { describe, expect, test } from 'vitest';
import { schemaMarkdown, TASK_KEYS } from '../../src/config/index.js';
import { runCli } from './run-cli.js';

const VALID = 'test/fixtures/configs/valid/minimal.yaml';
const BROKEN = 'test/fixtures/configs/broken/several-problems.yaml';

describe('mft config check', () => {
  test('prints key, value and source for every key; --set wins over the task file', () => {
    const r = runCli(['config', 'check', VALID, '--set', 'lora_r=4']);
    // only Dawn's own warnings, when it probes a GPU for backend auto
    expect(r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('Warning: '))).toEqual([]);
    expect(r.status).toBe(0);
    const [table, memory] = r.stdout.trimEnd().split('\n\n');
    expect(table!.split('\n').map((l) => l.split(/\s+/)[0])).toEqual(TASK_KEYS);
    expect(memory).toMatch(
      /^memory on \w+: about [\d.]+ [KMG]iB \(base .*\); limit: .*this machine's memory/,
    );
    expect(r.stdout).toMatch(/^lora_alpha +16 +\(task file\)$/m);
    expect(r.stdout).toMatch(/^lora_r +4 +\(--set\)$/m);
    expect(r.stdout).toMatch(/^learning_rate +0\.0002 +\(task file\)$/m);
    expect(r.stdout).toMatch(/^sequence_len +128 +\(recipe code_completion\)$/m);
    expect(r.stdout).toMatch(/^adam_beta2 +0\.999 +\(default\)$/m);
  });

  test('--json prints exactly one JSON document {config, sources, memory}', () => {
    const r = runCli(['config', 'check', VALID, '--json', '--set', 'fields.text=content']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as { config: Record<string, unknown>; sources: Record<string, string> };
    expect(Object.keys(doc)).toEqual(['config', 'sources', 'memory']);
    expect(Object.keys(doc.config)).toEqual(TASK_KEYS);
    expect(doc.config['fields']).toEqual({ text: 'content' });
    expect(doc.sources['fields']).toBe('--set');
    expect(doc.config['learning_rate']).toBe(0.0002);
  });

  test('user mistakes: one line per problem, place first, exit 2, no stack trace', () => {
    const r = runCli(['config', 'check', BROKEN, '--set', 'lora_r=x']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      [
        `mft: ${BROKEN}:4:16: learning_rate: expected a number, got "2e-4x"`,
        `mft: ${BROKEN}:5:12: max_steps: must be > 0, got 0`,
        `mft: ${BROKEN}:6:15: lora_dropout: must be in [0, 1), got -0.1`,
        `mft: ${BROKEN}:7:10: backend: expected one of auto, tensorflow, webgpu, wasm, cpu, got "gpu" (fix: did you mean cpu?)`,
        `mft: ${BROKEN}:8:16: max_grad_norm: expected a number or null, got "none"`,
        'mft: --set lora_r: expected an integer, got "x"',
        '',
      ].join('\n'),
    );
  });

  test('--debug adds the stack trace', () => {
    const r = runCli(['--debug', 'config', 'check', 'test/fixtures/configs/broken/bad-enum.yaml']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^mft: test\/fixtures\/configs\/broken\/bad-enum\.yaml:4:15: quantization: /);
    expect(r.stderr).toMatch(/\n\s+at .*load-task-config\.ts/);
  });
});

describe('mft config schema', () => {
  test('--markdown prints the reference tables generated from the schema', () => {
    const r = runCli(['config', 'schema', '--markdown']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(schemaMarkdown());
  });
});
