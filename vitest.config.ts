import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // No blanket retries: a flaky test is a bug to fix, not to hide.
    retry: 0,
  },
});
