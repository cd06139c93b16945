import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // No test reaches the Hugging Face Hub by accident; the Hub tests set their own loopback endpoint.
    env: { HF_HUB_OFFLINE: '1' },
  },
});
