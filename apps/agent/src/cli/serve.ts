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
  await agent.stop();
  return EXIT.ok;
}
