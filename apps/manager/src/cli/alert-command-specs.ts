import type { CommandSpec } from './spec.js';
import { base, byId, client, clientEnv, list } from './spec-fragments.js';

/** `manager alert …` and `manager webhook …` (docs/manager.md#alerts-and-webhooks); spread into command-specs.ts. */
export const ALERT_COMMANDS = {
  alertList: {
    name: 'alert list',
    summary: 'list alerts, newest first (open ones unless told otherwise)',
    synopsis: '[--state open|resolved|all] [--kind KIND] [--limit N | --all] [--json]',
    args: [],
    options: {
      ...client,
      ...list,
      state: { type: 'string', value: 'STATE', help: 'open, resolved or all', default: 'open' },
      kind: {
        type: 'string',
        value: 'KIND',
        help: 'backup_failed, volume_overdue, agent_unreachable, gc_failed, verify_failed or target_unreachable',
      },
    },
    description:
      'Alerts are raised and resolved by the manager itself; each row shows its severity, kind, what it is ' +
      'about, when it opened and whether someone acknowledged it.',
    environment: clientEnv,
    exitCodes: base,
    examples: ['npx manager alert list', 'npx manager alert list --state all --kind volume_overdue'],
  },
  alertAck: {
    name: 'alert ack',
    summary: 'acknowledge an open alert (it stays open until its condition clears)',
    synopsis: 'ID [--json]',
    args: [{ name: 'ID', help: "the alert's id" }],
    options: client,
    description: 'Acknowledging again keeps the first acknowledgement. A resolved alert exits 4.',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: ['npx manager alert ack 0b9e…'],
  },
  webhookAdd: {
    name: 'webhook add',
    summary: 'add a webhook told of alert changes; its signing secret is printed once',
    synopsis: 'URL [--description TEXT] [--events LIST] [--json]',
    args: [{ name: 'URL', help: 'where the events are POSTed (http or https)' }],
    options: {
      ...client,
      description: { type: 'string', value: 'TEXT', help: 'what it is for' },
      events: {
        type: 'string',
        value: 'LIST',
        help: 'comma-separated: alert.opened, alert.resolved, alert.acknowledged',
        default: 'all three',
      },
    },
    description:
      'The signing secret is printed alone on stdout, once (a note about it goes to stderr); the receiver ' +
      'checks x-stowage-signature with it (docs/manager.md#verifying-a-delivery).',
    environment: clientEnv,
    exitCodes: base,
    examples: [
      'npx manager webhook add https://hooks.example.com/stowage > webhook.secret',
      'npx manager webhook add https://ops.example.com/in --events alert.opened,alert.resolved',
    ],
  },
  webhookList: {
    name: 'webhook list',
    summary: 'list webhooks and how their last delivery went (never their secrets)',
    synopsis: '[--limit N | --all] [--json]',
    args: [],
    options: { ...client, ...list },
    description: '',
    environment: clientEnv,
    exitCodes: base,
    examples: [],
  },
  webhookRemove: {
    name: 'webhook remove',
    summary: 'remove a webhook and the deliveries it still had to make',
    synopsis: 'ID [--json]',
    args: [{ name: 'ID', help: "the webhook's id" }],
    options: client,
    description: '',
    environment: clientEnv,
    exitCodes: byId,
    examples: [],
  },
  webhookTest: {
    name: 'webhook test',
    summary: 'send a webhook.test event now and print the HTTP status it got',
    synopsis: 'ID [--json]',
    args: [{ name: 'ID', help: "the webhook's id" }],
    options: client,
    description: 'Exits 1 when the receiver did not answer with a 2xx (the status or the cause is printed).',
    environment: clientEnv,
    exitCodes: byId,
    examples: ['npx manager webhook test 5f3a…'],
  },
} as const satisfies Record<string, CommandSpec>;
