import { availableParallelism, hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { LOG_LEVELS } from './log.js';

/**
 * `agent serve`'s one configuration schema. Sources, later ones winning: built-in defaults, a JSON file
 * (`--config PATH` or `AGENT_CONFIG`), `AGENT_*` environment variables. Secrets may come from files
 * (`token_file`, `AGENT_TOKEN_FILE`). Parsed once at start-up; `redactConfig` gives what may be logged.
 */

const AbsolutePath = z.string().refine((p) => isAbsolute(p) && !p.includes('\0'), 'must be an absolute path');
const Listen = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 0.0.0.0:7480')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535');
const Token = z.string().min(32, 'must be at least 32 characters (e.g. `openssl rand -hex 32`)');

const FileSchema = z.strictObject({
  listen: Listen.optional(),
  token: Token.optional(),
  token_file: AbsolutePath.optional(),
  agent_id: z.string().min(1).max(200).optional(),
  state_dir: AbsolutePath.optional(),
  manager: z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }).optional(),
      token: Token.optional(),
      token_file: AbsolutePath.optional(),
    })
    .optional(),
  backends: z
    .strictObject({
      local_file: z
        .strictObject({
          roots: z.array(AbsolutePath).min(1),
          snapshot_mode: z.enum(['auto', 'reflink', 'copy']).optional(),
        })
        .optional(),
      block: z.strictObject({ devices: z.array(AbsolutePath).min(1) }).optional(),
      iscsi: z
        .strictObject({
          targets: z
            .array(
              z.strictObject({
                // udev names the LUN's device by the node record's address, so a host name could never match.
                portal: z
                  .string()
                  .regex(
                    /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/,
                    'must be IP:PORT (an IPv4 address, or [IPv6]), as in the node record',
                  ),
                iqn: z.string().regex(/^(iqn|eui|naa)\.[A-Za-z0-9.:-]+$/, 'must be an iqn./eui./naa. name'),
                lun: z.number().int().min(0).max(16383),
              }),
            )
            .min(1),
          device_timeout_seconds: z.number().positive().max(3600).optional(),
        })
        .optional(),
    })
    .optional(),
  repository_roots: z.array(AbsolutePath).optional(),
  /** S3 endpoints jobs may name (origins: scheme, host, port); absent → any. */
  s3_endpoints: z
    .array(
      z
        .url({ protocol: /^https?$/ })
        .refine((u) => new URL(u).pathname === '/' && !u.includes('?'), 'must be scheme://host[:port] only'),
    )
    .min(1)
    .optional(),
  concurrency: z.number().int().min(1).max(64).optional(),
  threads: z.number().int().min(1).max(256).optional(),
  retry_attempts: z.number().int().min(1).max(100).optional(),
  packs_per_index: z.number().int().min(1).max(4096).optional(),
  shutdown_grace_seconds: z.number().min(0).max(3600).optional(),
  tls: z.strictObject({ cert_file: AbsolutePath, key_file: AbsolutePath }).optional(),
  log_level: z.enum(LOG_LEVELS).optional(),
});
type FileConfig = z.infer<typeof FileSchema>;

export interface AgentConfig {
  listen: { host: string; port: number };
  token: string;
  agentId: string;
  stateDir: string;
  manager: { url: string; token: string } | undefined;
  backends: {
    localFile?: { roots: string[]; snapshotMode: 'auto' | 'reflink' | 'copy' };
    block?: { devices: string[] };
    iscsi?: { targets: { portal: string; iqn: string; lun: number }[]; deviceTimeoutSeconds: number };
  };
  repositoryRoots: string[];
  /** Origins (`https://host:port`) s3:// targets may name; undefined → any endpoint. */
  s3Endpoints: string[] | undefined;
  concurrency: number;
  threads: number;
  retryAttempts: number;
  /** Packs one index object of a backup names: what a re-run after a crash may store again. */
  packsPerIndex: number;
  shutdownGraceSeconds: number;
  tls: { certFile: string; keyFile: string } | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
}

type Kind = 'string' | 'int' | 'number' | 'paths' | 'list';

/** One row per setting an environment variable can set: drives the env mapping and `--help` alike. */
export const SETTINGS: readonly { env: string; key: string; kind: Kind; default: string; help: string }[] = [
  {
    env: 'AGENT_LISTEN',
    key: 'listen',
    kind: 'string',
    default: '127.0.0.1:7480',
    help: 'address to serve the API on',
  },
  {
    env: 'AGENT_TOKEN',
    key: 'token',
    kind: 'string',
    default: '(required)',
    help: 'bearer token callers must present (≥ 32 characters)',
  },
  {
    env: 'AGENT_TOKEN_FILE',
    key: 'token_file',
    kind: 'string',
    default: '',
    help: 'file holding the token instead',
  },
  {
    env: 'AGENT_ID',
    key: 'agent_id',
    kind: 'string',
    default: '(host name)',
    help: "this agent's name in job events",
  },
  {
    env: 'AGENT_STATE_DIR',
    key: 'state_dir',
    kind: 'string',
    default: '/var/lib/stowage-agent',
    help: 'job journal and undelivered events',
  },
  {
    env: 'AGENT_MANAGER_URL',
    key: 'manager.url',
    kind: 'string',
    default: '(none: events are not sent)',
    help: 'manager base URL that job events are POSTed to',
  },
  {
    env: 'AGENT_MANAGER_TOKEN',
    key: 'manager.token',
    kind: 'string',
    default: '',
    help: "the agent's own token for the manager",
  },
  {
    env: 'AGENT_MANAGER_TOKEN_FILE',
    key: 'manager.token_file',
    kind: 'string',
    default: '',
    help: 'file holding that token instead',
  },
  {
    env: 'AGENT_LOCAL_FILE_ROOTS',
    key: 'backends.local_file.roots',
    kind: 'paths',
    default: '(backend off)',
    help: 'local-file backend: directories of volume images, colon-separated',
  },
  {
    env: 'AGENT_LOCAL_FILE_SNAPSHOT_MODE',
    key: 'backends.local_file.snapshot_mode',
    kind: 'string',
    default: 'auto',
    help: 'auto (reflink; a copy only when a request asks), reflink (never a copy), copy (copies, when asked)',
  },
  {
    env: 'AGENT_BLOCK_DEVICES',
    key: 'backends.block.devices',
    kind: 'paths',
    default: '(backend off)',
    help: 'block backend: allowed device paths, colon-separated',
  },
  {
    env: 'AGENT_ISCSI_DEVICE_TIMEOUT_SECONDS',
    key: 'backends.iscsi.device_timeout_seconds',
    kind: 'number',
    default: '30',
    help: "iscsi backend: wait for the LUN's device after login (targets: config file only)",
  },
  {
    env: 'AGENT_REPOSITORY_ROOTS',
    key: 'repository_roots',
    kind: 'paths',
    default: '(none: file:// targets refused)',
    help: 'directories where file:// repositories may be, colon-separated',
  },
  {
    env: 'AGENT_S3_ENDPOINTS',
    key: 's3_endpoints',
    kind: 'list',
    default: '(any)',
    help: 'S3 endpoints jobs may use, comma-separated origins (https://s3.example.com:443); AWS is https://s3.REGION.amazonaws.com',
  },
  {
    env: 'AGENT_CONCURRENCY',
    key: 'concurrency',
    kind: 'int',
    default: '2',
    help: 'jobs running at once; more are queued',
  },
  { env: 'AGENT_THREADS', key: 'threads', kind: 'int', default: '(cores)', help: 'worker threads per job' },
  {
    env: 'AGENT_RETRY_ATTEMPTS',
    key: 'retry_attempts',
    kind: 'int',
    default: '6',
    help: 'tries per storage request before a job fails',
  },
  {
    env: 'AGENT_PACKS_PER_INDEX',
    key: 'packs_per_index',
    kind: 'int',
    default: '64',
    help: "packs (~8 MiB each) a backup's index object names: a re-run after a crash stores again at most this many",
  },
  {
    env: 'AGENT_SHUTDOWN_GRACE_SECONDS',
    key: 'shutdown_grace_seconds',
    kind: 'number',
    default: '30',
    help: 'on SIGTERM, how long running jobs may finish before they are cancelled',
  },
  {
    env: 'AGENT_TLS_CERT_FILE',
    key: 'tls.cert_file',
    kind: 'string',
    default: '(plain HTTP)',
    help: 'PEM certificate (with AGENT_TLS_KEY_FILE) to serve HTTPS',
  },
  { env: 'AGENT_TLS_KEY_FILE', key: 'tls.key_file', kind: 'string', default: '', help: 'PEM private key' },
  {
    env: 'AGENT_LOG_LEVEL',
    key: 'log_level',
    kind: 'string',
    default: 'info',
    help: 'debug, info, warn or error',
  },
];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface ConfigSources {
  env: Record<string, string | undefined>;
  /** `--config PATH`; else `AGENT_CONFIG`. */
  configPath?: string;
  readFile: (path: string) => Promise<string>;
  /**
   * Checks host paths at start-up when given (`agent serve` passes `fs.stat`): a local-file root must be an
   * existing directory, else start-up fails; a block device that is not there yet is only a warning (it may
   * be attached later).
   */
  stat?: (path: string) => Promise<{ isDirectory(): boolean; isBlockDevice(): boolean }>;
}

/** Builds and validates the configuration, or throws a ConfigError naming every problem and its source. */
export async function loadAgentConfig(
  sources: ConfigSources,
): Promise<{ config: AgentConfig; warnings: string[] }> {
  const warnings: string[] = [];
  const configPath = sources.configPath ?? sources.env.AGENT_CONFIG;
  let raw: unknown = {};
  if (configPath !== undefined && configPath !== '') {
    let text: string;
    try {
      text = await sources.readFile(configPath);
    } catch (error) {
      throw new ConfigError(
        `cannot read the config file ${configPath}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`config file ${configPath} is not valid JSON: ${(error as Error).message}`);
    }
  }
  const fromFile = FileSchema.safeParse(raw);
  if (!fromFile.success)
    throw new ConfigError(problems(fromFile.error, `config file ${configPath}`, undefined));

  const merged = structuredClone(fromFile.data) as Record<string, unknown>;
  const envProblems: string[] = [];
  const known = new Set(SETTINGS.map((s) => s.env).concat('AGENT_CONFIG'));
  for (const name of Object.keys(sources.env)) {
    if (name.startsWith('AGENT_') && !known.has(name))
      warnings.push(`unknown environment variable ${name} is ignored`);
  }
  for (const setting of SETTINGS) {
    const value = sources.env[setting.env];
    if (value === undefined || value === '') continue;
    let parsed: unknown = value;
    if (setting.kind === 'int' || setting.kind === 'number') {
      parsed = Number(value);
      if (!Number.isFinite(parsed as number) || (setting.kind === 'int' && !Number.isInteger(parsed))) {
        envProblems.push(
          `${setting.env}: must be ${setting.kind === 'int' ? 'an integer' : 'a number'}, got "${value}"`,
        );
        continue;
      }
    } else if (setting.kind === 'paths') {
      parsed = value.split(':').filter((p) => p !== '');
    } else if (setting.kind === 'list') {
      parsed = value
        .split(',')
        .map((p) => p.trim())
        .filter((p) => p !== '');
    }
    setPath(merged, setting.key, parsed);
  }
  if (envProblems.length > 0) throw new ConfigError(`invalid configuration:\n  ${envProblems.join('\n  ')}`);
  const checked = FileSchema.safeParse(merged);
  if (!checked.success)
    throw new ConfigError(problems(checked.error, `config file ${configPath ?? '(none)'}`, sources.env));
  const c: FileConfig = checked.data;

  const errors: string[] = [];
  const secret = async (value: string | undefined, file: string | undefined, name: string) => {
    if (value !== undefined && file !== undefined) {
      errors.push(`${name}: set either the token or the token file, not both`);
      return undefined;
    }
    if (file === undefined) return value;
    try {
      const text = (await sources.readFile(file)).trim();
      const ok = Token.safeParse(text);
      if (!ok.success) errors.push(`${name}_file ${file}: ${ok.error.issues[0]?.message}`);
      return text;
    } catch (error) {
      errors.push(`${name}_file: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`);
      return undefined;
    }
  };
  const token = await secret(c.token, c.token_file, 'token (AGENT_TOKEN)');
  if (token === undefined && !errors.some((e) => e.startsWith('token'))) {
    errors.push(
      'token: required — set AGENT_TOKEN or AGENT_TOKEN_FILE (or token / token_file in the config file)',
    );
  }
  let manager: AgentConfig['manager'];
  if (c.manager?.url !== undefined) {
    const managerToken = await secret(
      c.manager.token,
      c.manager.token_file,
      'manager.token (AGENT_MANAGER_TOKEN)',
    );
    if (managerToken === undefined && !errors.some((e) => e.startsWith('manager.token'))) {
      errors.push(
        'manager.token: required with a manager URL — set AGENT_MANAGER_TOKEN or AGENT_MANAGER_TOKEN_FILE',
      );
    } else if (managerToken !== undefined) {
      manager = { url: c.manager.url.replace(/\/+$/, ''), token: managerToken };
    }
  } else if (c.manager?.token !== undefined || c.manager?.token_file !== undefined) {
    warnings.push('a manager token is set without a manager URL; job events are not sent');
  }
  const backends: AgentConfig['backends'] = {};
  if (c.backends?.local_file) {
    backends.localFile = {
      roots: c.backends.local_file.roots,
      snapshotMode: c.backends.local_file.snapshot_mode ?? 'auto',
    };
  }
  if (c.backends?.block) backends.block = { devices: c.backends.block.devices };
  if (c.backends?.iscsi) {
    backends.iscsi = {
      targets: c.backends.iscsi.targets,
      deviceTimeoutSeconds: c.backends.iscsi.device_timeout_seconds ?? 30,
    };
  }
  if (sources.stat !== undefined) {
    const stat = sources.stat;
    for (const root of backends.localFile?.roots ?? []) {
      const found = await stat(root).catch((error: NodeJS.ErrnoException) => error.code ?? String(error));
      if (typeof found === 'string')
        errors.push(`backends.local_file.roots: ${root}: cannot use it (${found})`);
      else if (!found.isDirectory()) errors.push(`backends.local_file.roots: ${root} is not a directory`);
    }
    for (const device of backends.block?.devices ?? []) {
      const found = await stat(device).catch(() => undefined);
      if (found === undefined) warnings.push(`backends.block.devices: ${device} is not there (yet)`);
      else if (!found.isBlockDevice())
        warnings.push(`backends.block.devices: ${device} is not a block device`);
    }
  }
  if (Object.keys(backends).length === 0) {
    errors.push(
      'backends: configure at least one (AGENT_LOCAL_FILE_ROOTS, AGENT_BLOCK_DEVICES, or backends in the config file)',
    );
  }
  if (errors.length > 0) throw new ConfigError(`invalid configuration:\n  ${errors.join('\n  ')}`);

  const listen = c.listen ?? '127.0.0.1:7480';
  const colon = listen.lastIndexOf(':');
  return {
    config: {
      listen: { host: listen.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(listen.slice(colon + 1)) },
      token: token!,
      agentId: c.agent_id ?? hostname(),
      stateDir: c.state_dir ?? '/var/lib/stowage-agent',
      manager,
      backends,
      repositoryRoots: c.repository_roots ?? [],
      s3Endpoints: c.s3_endpoints?.map((u) => new URL(u).origin),
      concurrency: c.concurrency ?? 2,
      threads: c.threads ?? availableParallelism(),
      retryAttempts: c.retry_attempts ?? 6,
      packsPerIndex: c.packs_per_index ?? 64,
      shutdownGraceSeconds: c.shutdown_grace_seconds ?? 30,
      tls: c.tls === undefined ? undefined : { certFile: c.tls.cert_file, keyFile: c.tls.key_file },
      logLevel: c.log_level ?? 'info',
    },
    warnings,
  };
}

/** The configuration as it may be logged: tokens replaced, everything else (paths included) kept. */
export function redactConfig(config: AgentConfig): Record<string, unknown> {
  return {
    ...config,
    token: '[redacted]',
    manager: config.manager === undefined ? undefined : { url: config.manager.url, token: '[redacted]' },
  };
}

/** What `agent serve --help` prints: generated from SETTINGS, so it cannot drift from the code. */
export function configHelp(): string {
  const width = Math.max(...SETTINGS.map((s) => s.env.length));
  const rows = SETTINGS.map(
    (s) =>
      `  ${s.env.padEnd(width)}  ${s.help}${s.default === '' ? '' : ` [default: ${s.default}]`}\n  ${' '.repeat(width)}  (config file: ${s.key})`,
  );
  return `Usage: agent serve [--config FILE.json]

Runs the agent service: the HTTP API the manager drives (volumes, snapshots, backup and restore jobs) and the
delivery of job events to the manager. Settings come from defaults, then the JSON config file (--config or
AGENT_CONFIG), then these environment variables, later ones winning:

${rows.join('\n')}

iSCSI targets are set in the config file only: "backends": {"iscsi": {"targets": [{"portal": "10.0.0.5:3260",
"iqn": "iqn.2001-05.com.example:vol1", "lun": 0}]}}. Unknown keys in the file are errors.

SIGTERM or SIGINT: stop taking jobs, let running ones finish for the grace period, cancel the rest, clean up
(snapshots, half-restored volumes, iSCSI sessions), deliver pending events, exit 0.
Docs: docs/agent.md, docs/agent-config.md.
`;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let at = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof at[part] !== 'object' || at[part] === null) at[part] = {};
    at = at[part] as Record<string, unknown>;
  }
  at[parts.at(-1)!] = value;
}

function problems(
  error: z.ZodError,
  fileLabel: string,
  env: Record<string, string | undefined> | undefined,
): string {
  const lines = error.issues.map((issue) => {
    const key = issue.path.map(String).join('.');
    // An issue inside a list (`s3_endpoints.0`) belongs to the setting of the list.
    const setting = SETTINGS.find((s) => s.key === key || key.startsWith(`${s.key}.`));
    const source =
      env !== undefined && setting !== undefined && env[setting.env] !== undefined && env[setting.env] !== ''
        ? setting.env
        : `${key || '(top level)'} in ${fileLabel}`;
    return `${source}: ${issue.message}`;
  });
  return `invalid configuration:\n  ${lines.join('\n  ')}`;
}
