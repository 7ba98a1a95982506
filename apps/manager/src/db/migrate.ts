import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { ManagerDatabase } from './database.js';

/** The repository's top-level migrations/ folder, found from this file in src/ or dist/. */
export const DEFAULT_MIGRATIONS_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../../migrations',
);

// Advisory locks are (class, object) pairs of int4: the class spells "stow", object 1 is "migrating".
const LOCK_CLASS = 0x73746f77;
const MIGRATION_LOCK = 1;
const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

export interface Migration {
  readonly name: string;
  readonly sql: string;
  readonly sha256: string;
}

export interface MigrationReport {
  /** Files applied by this call, in order. */
  readonly applied: string[];
  /** Files already recorded before it. */
  readonly alreadyApplied: number;
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/** Reads `NNNN_verb_noun.sql` files in name order; anything else in the folder but README.md is refused. */
export function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Migration[] {
  const names = readdirSync(dir)
    .filter((name) => name.endsWith('.sql'))
    .sort();
  const seen = new Set<string>();
  return names.map((name) => {
    const match = FILE_NAME.exec(name);
    if (match === null) throw new MigrationError(`${join(dir, name)}: not named NNNN_verb_noun.sql`);
    if (seen.has(match[1]!)) throw new MigrationError(`${join(dir, name)}: number ${match[1]} used twice`);
    seen.add(match[1]!);
    const text = readFileSync(join(dir, name), 'utf8');
    return { name, sql: text, sha256: createHash('sha256').update(text).digest('hex') };
  });
}

/**
 * Applies the migrations not yet recorded, each in its own transaction, holding a session advisory lock on
 * one connection for the whole run: two replicas starting at once apply each file once, the second waiting
 * for the first and then finding nothing to do. A recorded migration whose file changed is refused (the
 * files are forward-only), as is a database that records a migration this build does not know (a newer
 * manager migrated it).
 */
export async function migrate(
  database: Pick<ManagerDatabase, 'db' | 'runScript'>,
  migrations: readonly Migration[] = readMigrations(),
): Promise<MigrationReport> {
  const { db, runScript } = database;
  return db.connection().execute(async (conn) => {
    await sql`SELECT pg_advisory_lock(${LOCK_CLASS}::int, ${MIGRATION_LOCK}::int)`.execute(conn);
    try {
      await sql`CREATE TABLE IF NOT EXISTS manager_migration (
        name text PRIMARY KEY,
        sha256 text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`.execute(conn);
      const recorded = await conn.selectFrom('manager_migration').select(['name', 'sha256']).execute();
      const known = new Map(migrations.map((m) => [m.name, m]));
      for (const row of recorded) {
        const file = known.get(row.name);
        if (file === undefined) {
          throw new MigrationError(
            `the database records migration ${row.name}, which this manager does not have: a newer manager migrated it`,
          );
        }
        if (file.sha256 !== row.sha256) {
          throw new MigrationError(
            `migration ${row.name} changed after it was applied (migrations are forward-only: add a new file)`,
          );
        }
      }
      const done = new Set(recorded.map((row) => row.name));
      const applied: string[] = [];
      for (const migration of migrations) {
        if (done.has(migration.name)) continue;
        await conn.transaction().execute(async (trx) => {
          if (runScript) await runScript(migration.sql);
          else await sql.raw(migration.sql).execute(trx);
          await trx
            .insertInto('manager_migration')
            .values({ name: migration.name, sha256: migration.sha256 })
            .execute();
        });
        applied.push(migration.name);
      }
      return { applied, alreadyApplied: recorded.length };
    } finally {
      await sql`SELECT pg_advisory_unlock(${LOCK_CLASS}::int, ${MIGRATION_LOCK}::int)`.execute(conn);
    }
  });
}
