import { type Kysely, sql } from 'kysely';
import { Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from './db/schema.js';

/**
 * The manager's Prometheus metrics, in its own registry. What the database knows (backups by state, bytes
 * uploaded, the newest successful backup per volume, agents up) is read at scrape time, so every replica
 * reports the same figures; what only this process sees (HTTP request and job durations) is observed here.
 */
export class ManagerMetrics {
  readonly registry = new Registry();
  readonly #http: Histogram<'route' | 'method' | 'status'>;
  readonly #jobs: Histogram<'kind' | 'state'>;

  constructor(db: Kysely<Database>) {
    const registers = [this.registry];
    this.#http = new Histogram({
      name: 'stowage_manager_http_request_duration_seconds',
      help: 'HTTP requests by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
    this.#jobs = new Histogram({
      name: 'stowage_manager_job_duration_seconds',
      help: 'Jobs finished (as their events arrived here), by kind and final state.',
      labelNames: ['kind', 'state'],
      buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600],
      registers,
    });
    new Gauge({
      name: 'stowage_manager_backups',
      help: 'Backups in the inventory by state.',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        const rows = await db
          .selectFrom('backup')
          .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
          .groupBy('state')
          .execute();
        for (const row of rows) this.set({ state: row.state }, Number(row.n));
      },
    });
    new Gauge({
      name: 'stowage_manager_backup_bytes_uploaded',
      help: 'Bytes the completed backups in the inventory uploaded.',
      registers,
      async collect() {
        const row = await db
          .selectFrom('backup')
          .select(sql<number>`coalesce(sum(bytes_uploaded), 0)::bigint`.as('n'))
          .where('state', '=', 'completed')
          .executeTakeFirstOrThrow();
        this.set(Number(row.n));
      },
    });
    new Gauge({
      name: 'stowage_manager_volume_last_success_timestamp_seconds',
      help: 'When the newest completed backup of each volume finished (Unix time).',
      labelNames: ['volume_id'],
      registers,
      async collect() {
        this.reset();
        const rows = await db
          .selectFrom('backup')
          .select(['volume_id', (eb) => eb.fn.max('finished_at').as('at')])
          .where('state', '=', 'completed')
          .groupBy('volume_id')
          .execute();
        for (const row of rows)
          if (row.at !== null) this.set({ volume_id: row.volume_id }, new Date(row.at).getTime() / 1000);
      },
    });
    new Gauge({
      name: 'stowage_manager_agent_up',
      help: 'Whether the last contact with each host’s agent succeeded (1) or not (0).',
      labelNames: ['host_id', 'host'],
      registers,
      async collect() {
        this.reset();
        const rows = await db.selectFrom('host').select(['id', 'name', 'status']).execute();
        for (const row of rows) this.set({ host_id: row.id, host: row.name }, row.status === 'up' ? 1 : 0);
      },
    });
  }

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.#http.observe({ route, method, status: String(status) }, seconds);
  }

  observeJob(kind: string, state: string, seconds: number): void {
    this.#jobs.observe({ kind, state }, seconds);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
