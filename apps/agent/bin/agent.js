#!/usr/bin/env node
// The `agent` binary. A committed shim (not build output) so npm can link and mark it executable at install
// time, before `prepare` has compiled dist/.
import { runFromProcess } from '../dist/cli/main.js';

await runFromProcess();
