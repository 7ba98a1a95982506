import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import type { Database } from './schema.js';

export type DatabaseKind = 'postgres' | 'pglite';

export interface ManagerDatabase {
  readonly db: Kysely<Database>;
  readonly kind: DatabaseKind;
  /** Where it lives, without credentials: for logs and errors. */
  readonly description: string;
  /**
   * Runs a script of several statements inside the caller's open transaction. PGlite's prepared-statement
   * path refuses more than one command, so it gets its own `exec`; pg runs a query without parameters as a
   * simple query, which takes several.
   */
  readonly runScript?: (script: string) => Promise<void>;
  close(): Promise<void>;
}

export type DatabaseLocation =
  /** A real PostgreSQL server (`postgres://user:pass@host:port/db`). */
  | { url: string; maxConnections?: number }
  /** Embedded PGlite in a directory (created when missing), or in memory when `dataDir` is absent. */
  | { dataDir?: string };

// int8 (bigint, and COUNT(*)) as a JS number: byte counts and sequence numbers stay far below 2^53, and every
// caller would otherwise convert strings itself. int8 is type OID 20.
const INT8_OID = 20;
const parseInt8 = (value: string): number => Number(value);

/**
 * Opens the manager's database: real PostgreSQL through `pg` when a URL is given, embedded PGlite otherwise.
 * The same kysely schema runs on both; PGlite serves one session at a time (its dialect queues the rest), so
 * concurrency is tested on real PostgreSQL.
 */
export async function openDatabase(location: DatabaseLocation): Promise<ManagerDatabase> {
  if ('url' in location) {
    const pool = new pg.Pool({
      connectionString: location.url,
      max: location.maxConnections ?? 10,
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID && format !== 'binary'
            ? parseInt8
            : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
      },
    });
    // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { db, kind: 'postgres', description: describeUrl(location.url), close: () => db.destroy() };
  }
  const pglite = await PGlite.create({
    ...(location.dataDir === undefined ? {} : { dataDir: location.dataDir }),
    parsers: { [INT8_OID]: parseInt8 },
    // PGlite's WebAssembly memory holds shared_buffers (default 128 MB) and never shrinks: 16 MB keeps an
    // idle embedded manager near 170 MiB instead of 300 (bench/gc.mjs); its files stay in the OS page cache.
    postgresqlconf: ['shared_buffers = 16MB'],
  });
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    kind: 'pglite',
    description: location.dataDir === undefined ? 'PGlite (in memory)' : `PGlite at ${location.dataDir}`,
    // One session: the transaction kysely holds open is the one this script runs in.
    runScript: async (script) => {
      await pglite.exec(script);
    },
    // The dialect closes PGlite when kysely is destroyed (kysely-pglite-dialect ≥ 1.3.1).
    close: () => db.destroy(),
  };
}

/** `postgres://user@host:port/db`: the URL without its password or parameters. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username === '' ? '' : `${decodeURIComponent(parsed.username)}@`;
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
  } catch {
    return 'postgres (unparseable DATABASE_URL)';
  }
}
