import { describe, expect, test } from 'vitest';
import { runCli } from './run-cli.js';

describe('mft doctor', () => {
  test('reports node, cores and every backend, and picks wasm here', () => {
    const r = runCli(['doctor', '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as {
      node: string;
      cores: number;
      backends: { name: string; available: boolean; detail: string }[];
      auto: string;
    };
    expect(report.node).toBe(process.version);
    expect(report.cores).toBeGreaterThan(0);
    expect(report.backends.map((b) => b.name)).toEqual(['tensorflow', 'wasm', 'cpu']);
    const tensorflow = report.backends[0]!;
    expect(tensorflow.available).toBe(false);
    expect(tensorflow.detail).toMatch(/@tensorflow\/tfjs-node-gpu is not installed/);
    expect(report.auto).toBe('wasm');
  });

  test('prints a table without --json', () => {
    const r = runCli(['doctor']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/backend: auto picks wasm/);
    expect(r.stderr).toBe('');
  });
});

describe('exit codes', () => {
  test('an unknown command is a usage error (2)', () => {
    expect(runCli(['no-such-command']).status).toBe(2);
  });
  test('--version prints the version', () => {
    const r = runCli(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
