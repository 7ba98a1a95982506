#!/usr/bin/env node
// The `agent` binary. A committed shim (not build output) so npm can link and mark it executable at install
// time, before `prepare` has compiled dist/. CommonJS on purpose: an ES module entry starts libuv's thread
// pool while it loads, before UV_THREADPOOL_SIZE could be set.
const { availableParallelism } = require('node:os');

// Filesystem repositories keep many writes and fsyncs in flight; libuv's default pool of 4 threads would
// serialize them.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(16, availableParallelism() * 4));
import('../dist/cli/main.js').then(
  (cli) => cli.runFromProcess(),
  (error) => {
    // dist/ missing or half-built: one line, as for every other failure (the stack with STOWAGE_DEBUG).
    process.stderr.write(
      `agent: cannot load the command (${error.message.split('\n')[0]}); build it with "npm run build"\n`,
    );
    if (process.env.STOWAGE_DEBUG && process.env.STOWAGE_DEBUG !== '0')
      process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  },
);
