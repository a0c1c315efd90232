import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One test file at a time, each in its own process, on any machine (integration and matrix files start real servers).
    poolOptions: { forks: { minForks: 1, maxForks: 1 } },
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/env/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // One file at a time, each in a fresh process: a file that times out with the embedded ClickHouse
          // open (chdb allows one data directory per process) cannot make every later file fail.
          pool: 'forks',
          poolOptions: { forks: { singleFork: false, isolate: true } },
        },
      },
      {
        // The safety-of-change matrix (test/matrix/README.md): WEIR_MATRIX=full for every cell
        // (npm run matrix), the CI subset otherwise. It needs no Kubernetes, so no globalSetup;
        // it runs after the other projects so that its processes do not share the cores with them.
        test: {
          name: 'matrix',
          include: ['test/matrix/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 180_000,
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
