import { defineConfig } from 'vitest/config';

// Tests import workspace packages through their `source` export condition, so they run against src/ and
// never against a stale dist/. Worker threads started from .ts files get the same condition (see
// packages/engine/src/workers).
export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    // The AWS SDK is pinned to a Node 20 release; its notice about later releases is noise in test output.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    setupFiles: ['./vitest.setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
