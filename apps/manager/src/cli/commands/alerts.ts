import {
  ALERT_KINDS,
  type Alert,
  type AlertListQuery,
  WEBHOOK_EVENT_TYPES,
  type Webhook,
  type WebhookEventType,
} from '@stowage/api';
import { type OptionValues, parseChoice } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, idArg } from '../context.js';
import { CliError, EXIT } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import {
  formatFields,
  formatTable,
  formatTime,
  printable,
  printJson,
  printLine,
  printNote,
} from '../output.js';

// `manager alert …` and `manager webhook …`. They call the client's generic `request` with the route's name:
// the route table types it as fully as a method would.

type C = typeof COMMANDS;

/** What an alert is about, briefly: the first id it names. */
function aboutOf(a: Alert): string {
  const [name, id] =
    (
      [
        ['volume', a.volume_id],
        ['backup', a.backup_id],
        ['host', a.host_id],
        ['target', a.backup_target_id],
      ] as const
    ).find(([, value]) => value !== null) ?? [];
  return name === undefined ? '-' : `${name} ${id}`;
}

export function alertTable(alerts: readonly Alert[]): string {
  return formatTable(
    ['ID', 'SEVERITY', 'KIND', 'ABOUT', 'OPENED', 'STATE', 'ACKNOWLEDGED', 'MESSAGE'],
    alerts.map((a) => [
      a.id,
      a.severity,
      a.kind,
      aboutOf(a),
      formatTime(a.opened_at),
      a.state === 'open' ? 'open' : `resolved ${formatTime(a.resolved_at)}`,
      a.acknowledged_by === null ? '-' : printable(a.acknowledged_by),
      printable(a.message),
    ]),
  );
}

export function alertList(values: OptionValues<C['alertList']>, _: string[], cli: CliEnv): Promise<number> {
  const state = parseChoice('state', values.state ?? 'open', ['open', 'resolved', 'all'] as const);
  const kind = values.kind === undefined ? undefined : parseChoice('kind', values.kind, ALERT_KINDS);
  const client = connect(values, cli);
  const filter: Partial<AlertListQuery> = { state, ...(kind === undefined ? {} : { kind }) };
  return listCommand(
    cli,
    values,
    'alerts',
    (q) => client.request('listAlerts', { query: { ...filter, ...q } }, cli.signal),
    alertTable,
  );
}

export async function alertAck(
  values: OptionValues<C['alertAck']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('ID', ref);
  const alert = await connect(values, cli).request('acknowledgeAlert', { params: { id } }, cli.signal);
  if (values.json) printJson(cli, alert);
  else {
    printLine(
      cli,
      `alert ${alert.id} acknowledged by ${printable(alert.acknowledged_by ?? '-')} at ${formatTime(alert.acknowledged_at)}`,
    );
  }
  return EXIT.ok;
}

export function webhookTable(hooks: readonly Webhook[]): string {
  return formatTable(
    ['ID', 'URL', 'EVENTS', 'DESCRIPTION', 'LAST ATTEMPT', 'LAST OUTCOME'],
    hooks.map((h) => [
      h.id,
      printable(h.url),
      h.events.join(','),
      printable(h.description ?? '-'),
      formatTime(h.last_attempt_at),
      h.last_attempt_at === null ? '-' : (h.last_error ?? `ok ${h.last_status}`),
    ]),
  );
}

/** `--events a,b`: each one of the event types, none twice. */
function parseEvents(text: string): WebhookEventType[] {
  const events = text.split(',').map((e) => e.trim());
  return [...new Set(events.map((e) => parseChoice('events', e, WEBHOOK_EVENT_TYPES)))];
}

export async function webhookAdd(
  values: OptionValues<C['webhookAdd']>,
  [url]: string[],
  cli: CliEnv,
): Promise<number> {
  const body = {
    url: url!,
    ...(values.description === undefined ? {} : { description: values.description }),
    ...(values.events === undefined ? {} : { events: parseEvents(values.events) }),
  };
  const created = await connect(values, cli).request('createWebhook', { body }, cli.signal);
  if (values.json) printJson(cli, created);
  else {
    printLine(cli, created.secret);
    printNote(
      cli,
      `added webhook ${created.webhook.id} for ${created.webhook.events.join(', ')}; the signing secret above ` +
        'is shown once: keep it now',
    );
  }
  return EXIT.ok;
}

export function webhookList(
  values: OptionValues<C['webhookList']>,
  _: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  return listCommand(
    cli,
    values,
    'webhooks',
    (q) => client.request('listWebhooks', { query: q }, cli.signal),
    webhookTable,
  );
}

export async function webhookRemove(
  values: OptionValues<C['webhookRemove']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('ID', ref);
  await connect(values, cli).request('deleteWebhook', { params: { id } }, cli.signal);
  if (values.json) printJson(cli, { id, removed: true });
  else printLine(cli, `removed webhook ${id}`);
  return EXIT.ok;
}

export async function webhookTest(
  values: OptionValues<C['webhookTest']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('ID', ref);
  const result = await connect(values, cli).request('testWebhook', { params: { id } }, cli.signal);
  if (values.json) printJson(cli, result);
  else {
    cli.stdout.write(
      formatFields([
        ['delivery', result.delivery_id],
        ['status', result.status === null ? '-' : String(result.status)],
        ['error', result.error ?? '-'],
        ['time', `${result.duration_ms} ms`],
      ]),
    );
  }
  if (result.ok) return EXIT.ok;
  throw new CliError(`webhook ${id} failed its test: ${result.error ?? 'no cause given'}`);
}
