// Worker entry for tests: registers tsx in this thread (execArgv `--import tsx` does not reach worker threads'
// module loading on Node 20), then runs the TypeScript worker named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.script);
