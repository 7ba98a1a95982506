#!/usr/bin/env node
// The `manager` binary. A committed shim (not build output) so npm can link and mark it executable at install
// time, before `prepare` has compiled dist/; CommonJS like bin/agent.cjs of the agent.
import('../dist/cli/main.js').then(
  (cli) => cli.runFromProcess(),
  (error) => {
    // dist/ missing or half-built: one line, as for every other failure (the stack with STOWAGE_DEBUG).
    process.stderr.write(
      `manager: cannot load the command (${error.message.split('\n')[0]}); build it with "npm run build"\n`,
    );
    if (process.env.STOWAGE_DEBUG && process.env.STOWAGE_DEBUG !== '0')
      process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  },
);
