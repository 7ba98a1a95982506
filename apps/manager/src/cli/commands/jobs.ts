import { JOB_KINDS, JOB_STATES, type ManagedJob } from '@stowage/api';
import { type OptionValues, parseChoice } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, hostId, idArg } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import { formatFields, formatTable, formatTime, printJson, printLine } from '../output.js';
import { progressFigures } from '../progress.js';
import { watchJob } from '../watch.js';

type C = typeof COMMANDS;

export function jobTable(jobs: readonly ManagedJob[]): string {
  return formatTable(
    ['ID', 'KIND', 'STATE', 'CREATED', 'VOLUME', 'PROGRESS'],
    jobs.map((j) => [
      j.id,
      j.kind,
      j.state,
      formatTime(j.created_at),
      j.volume_id,
      j.state === 'running' ? progressFigures(j) : null,
    ]),
  );
}

export function jobFields(j: ManagedJob): string {
  return formatFields([
    ['id', j.id],
    ['kind', j.kind],
    ['state', j.state],
    ['host', j.host_id],
    ['volume', j.volume_id],
    ['backup', j.backup_id],
    ['created', formatTime(j.created_at)],
    ['started', formatTime(j.started_at)],
    ['finished', formatTime(j.finished_at)],
    ['last event', formatTime(j.last_event_at)],
    ['progress', `${j.progress.phase ?? '-'} ${progressFigures(j)}`],
    ['error', j.error === null ? null : `${j.error.code}: ${j.error.message}`],
  ]);
}

export async function jobGet(
  values: OptionValues<C['jobGet']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const job = await connect(values, cli).getJob(idArg('ID', ref), cli.signal);
  if (values.json) printJson(cli, job);
  else cli.stdout.write(jobFields(job));
  return EXIT.ok;
}

export async function jobList(values: OptionValues<C['jobList']>, _: string[], cli: CliEnv): Promise<number> {
  const client = connect(values, cli);
  const filter = {
    ...(values.state === undefined ? {} : { state: parseChoice('state', values.state, JOB_STATES) }),
    ...(values.kind === undefined ? {} : { kind: parseChoice('kind', values.kind, JOB_KINDS) }),
    ...(values.volume === undefined ? {} : { volume_id: idArg('--volume', values.volume) }),
    ...(values.host === undefined ? {} : { host_id: await hostId(client, values.host, cli.signal) }),
  };
  return listCommand(cli, values, 'jobs', (q) => client.listJobs({ ...filter, ...q }, cli.signal), jobTable);
}

export function jobWatch(values: OptionValues<C['jobWatch']>, [ref]: string[], cli: CliEnv): Promise<number> {
  const id = idArg('ID', ref);
  return watchJob(connect(values, cli), id, cli, { json: values.json === true });
}

export async function jobCancel(
  values: OptionValues<C['jobCancel']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const job = await connect(values, cli).cancelJob(idArg('ID', ref), cli.signal);
  if (values.json) printJson(cli, job);
  else
    printLine(
      cli,
      `asked the agent to cancel job ${job.id} (now ${job.state}); "manager job watch ${job.id}" follows it`,
    );
  return EXIT.ok;
}
