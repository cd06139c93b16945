/**
 * A BLAS library that does not open: products fall back to onnxruntime with at most one warning
 * line (only when OpenBLAS was asked for by name), and training code never sees the difference.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { REPO_ROOT, withoutDawnNotes } from '../cli/run-cli.js';

function runChild(env: Record<string, string>) {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', `${REPO_ROOT}test/backend/blas-fallback-child.ts`],
    {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, MFT_NATIVE_KERNELS: '1', MFT_BLAS_LIBRARY: '/nonexistent/libblas.so', ...env },
    },
  );
  expect(r.status).toBe(0);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  return {
    ...(JSON.parse(line) as { status: { gemm: string; detail: string }; product: number }),
    stderr: withoutDawnNotes(r.stderr),
  };
}

describe('a BLAS library that does not open', () => {
  test('MFT_GEMM=auto: onnxruntime runs the products, silently; doctor detail says why', () => {
    const r = runChild({ MFT_GEMM: 'auto' });
    expect(r.product).toBe(64 * 32 * 128);
    expect(r.status.gemm).toBe('onnxruntime');
    expect(r.status.detail).toMatch(
      /OpenBLAS not used: MFT_BLAS_LIBRARY=\/nonexistent\/libblas.so did not open/,
    );
    expect(r.stderr).toBe('');
  });

  test('MFT_GEMM=openblas: one warning line, then onnxruntime', () => {
    const r = runChild({ MFT_GEMM: 'openblas' });
    expect(r.product).toBe(64 * 32 * 128);
    expect(r.status.gemm).toBe('onnxruntime');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^mft: warning: MFT_GEMM=openblas, but MFT_BLAS_LIBRARY=\/nonexistent\/libblas.so did not open: /,
    );
  });

  test('MFT_GEMM with another value: one warning line naming it, then auto', () => {
    const r = runChild({ MFT_GEMM: 'mkl' });
    expect(r.status.gemm).toBe('onnxruntime');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^mft: warning: MFT_GEMM=mkl is not auto, openblas or onnxruntime; using auto \(fix: /,
    );
  });
});
