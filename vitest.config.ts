import { defineConfig } from 'vitest/config';

// Two projects: `unit` (next to the code, no sockets) and `integration` (real Prosody and
// ejabberd started by the harness). `@xmppbus/*` resolve to their TypeScript sources through
// the "source" export condition, so tests need no build.
const resolve = { conditions: ['source'] };

export default defineConfig({
  resolve,
  test: {
    projects: [
      {
        resolve,
        ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          environment: 'node',
          // Unit tests open no sockets: connect/listen throw (see the file).
          setupFiles: ['test/setup/no-sockets.ts'],
        },
      },
      {
        resolve,
        ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Real servers are CPU-heavy on a 2-core box: run integration files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
