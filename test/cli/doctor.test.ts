import { describe, expect, test } from 'vitest';
import { runCli, withoutDawnNotes } from './run-cli.js';

describe('mft doctor', () => {
  test('reports node, cores and every backend, and picks wasm here', () => {
    const r = runCli(['doctor', '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as {
      node: string;
      cores: number;
      backends: {
        name: string;
        available: boolean;
        detail: string;
        adapter?: { software: boolean; limits: Record<string, number>; features: string[] };
        auto_skips?: boolean;
      }[];
      auto: string;
    };
    expect(report.node).toBe(process.version);
    expect(report.cores).toBeGreaterThan(0);
    expect(report.backends.map((b) => b.name)).toEqual(['tensorflow', 'webgpu', 'wasm', 'cpu']);
    const tensorflow = report.backends[0]!;
    expect(tensorflow.available).toBe(false);
    expect(tensorflow.detail).toMatch(/@tensorflow\/tfjs-node-gpu is not installed/);
    // webgpu: available with an adapter (here lavapipe, a CPU emulation auto skips) or says why not
    const webgpu = report.backends[1]!;
    if (webgpu.available) {
      expect(webgpu.adapter!.limits.max_buffer_size).toBeGreaterThan(0);
      expect(Array.isArray(webgpu.adapter!.features)).toBe(true);
      if (webgpu.adapter!.software) expect(webgpu.auto_skips).toBe(true);
    } else {
      expect(webgpu.detail).toMatch(/no GPU adapter|not installed|failed to load/);
    }
    expect(report.auto).toBe('wasm');
  });

  test('prints a table without --json', () => {
    const r = runCli(['doctor']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/backend: auto picks wasm/);
    expect(r.stdout).toMatch(/^workers {3}num_workers: auto trains on \d+ here \(one per core/m);
    expect(r.stdout).toMatch(/^ {2}webgpu {5}(available {3}|unavailable)/m);
    expect(withoutDawnNotes(r.stderr)).toBe('');
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
