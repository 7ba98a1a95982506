import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError, configHelp, loadAgentConfig, redactConfig } from '../service/config.js';
import { createJsonLogger } from '../service/log.js';
import { startAgentService } from '../service/serve.js';
import type { CliEnv } from './context.js';
import { EXIT, UsageError } from './exit-codes.js';

/** `agent serve`: runs the agent service until SIGTERM or SIGINT, then stops gracefully and exits 0. */
export async function serveCommand(args: string[], cli: CliEnv): Promise<number> {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    cli.stdout.write(configHelp());
    return EXIT.ok;
  }
  let loaded: Awaited<ReturnType<typeof loadAgentConfig>>;
  try {
    loaded = await loadAgentConfig({
      env: cli.env,
      readFile: (path) => readFile(path, 'utf8'),
      stat,
      ...(values.config === undefined ? {} : { configPath: values.config }),
    });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  const { config, warnings } = loaded;
  const logger = createJsonLogger({
    level: config.logLevel,
    write: (line) => cli.stderr.write(line),
    base: { agent_id: config.agentId },
  });
  for (const warning of warnings) logger.warn(warning);
  logger.info('starting agent service', { config: redactConfig(config) });
  if (cli.signal.aborted) return EXIT.interrupted;
  const agent = await startAgentService(config, { logger });
  await new Promise<void>((resolve) => {
    if (cli.signal.aborted) resolve();
    else cli.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  const stuck = await agent.stop();
  if (stuck.length > 0) {
    // Jobs stuck on a hung device keep threads and I/O alive, which would keep the process from exiting;
    // their journal records make the next start clean up after them and report them failed.
    process.exit(EXIT.ok);
  }
  return EXIT.ok;
}
