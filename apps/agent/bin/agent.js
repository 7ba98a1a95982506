#!/usr/bin/env node
// The `agent` binary. A committed shim (not build output) so npm can link and mark it executable at install
// time, before `prepare` has compiled dist/.
import { availableParallelism } from 'node:os';

// Filesystem repositories keep many writes and fsyncs in flight; libuv's default pool of 4 threads would
// serialize them. Must be set before the first asynchronous fs call, so before the CLI is loaded.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(16, availableParallelism() * 4));
const { runFromProcess } = await import('../dist/cli/main.js');
await runFromProcess();
