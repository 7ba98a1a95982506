import { readFile, stat } from 'node:fs/promises';
import { ConfigError, configHelp, loadAgentConfig, redactConfig } from '../service/config.js';
import { createJsonLogger } from '../service/log.js';
import { startAgentService } from '../service/serve.js';
import { parseCommand } from './args.js';
import type { CliEnv } from './context.js';
import { EXIT, UsageError } from './exit-codes.js';
import { COMMANDS, exitCodeTable, optionsSection } from './spec.js';

/** `agent serve --help`: the service's settings, then the command's options and exit codes. */
export function serveHelp(): string {
  const spec = COMMANDS.serve;
  return `${configHelp()}\n${optionsSection(spec)}\n\nExit codes:\n${exitCodeTable(spec.exitCodes)}\n`;
}

/** `agent serve`: runs the agent service until SIGTERM or SIGINT, then stops gracefully and exits 0. */
export async function serveCommand(args: string[], cli: CliEnv): Promise<number> {
  const parsed = parseCommand(COMMANDS.serve, args);
  if (parsed.help) {
    cli.stdout.write(serveHelp());
    return EXIT.ok;
  }
  const { values } = parsed;
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
