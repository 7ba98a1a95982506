import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ManagerDatabase, openDatabase } from '../db/database.js';
import { migrate } from '../db/migrate.js';
import { postgresUnavailableReason, startPostgres, type TestPostgres } from './postgres.js';

// CI sets STOWAGE_REQUIRE_POSTGRES=1: there a missing PostgreSQL server is a failure, never a skip.
const required = process.env.STOWAGE_REQUIRE_POSTGRES === '1';
const unavailable = postgresUnavailableReason();

export interface DatabaseUnderTest {
  readonly kind: 'pglite' | 'postgres';
  /** The migrated database, emptied before each test. */
  readonly database: ManagerDatabase;
  /** The real server's URL (postgres only): tests of concurrency open more pools on it. */
  readonly url: string | undefined;
}

let databaseCounter = 0;

/**
 * Runs one body of tests on embedded PGlite and on a throwaway real PostgreSQL (kysely's dialect loop): the
 * same assertions on both, so the repository layer cannot depend on one of them. Each file gets its own
 * migrated database; every table is emptied before each test.
 */
export function describeOnDatabases(title: string, body: (subject: () => DatabaseUnderTest) => void): void {
  describe(`${title} on PGlite`, () => {
    let subject: DatabaseUnderTest;
    beforeAll(async () => {
      const database = await openDatabase({});
      await migrate(database);
      subject = { kind: 'pglite', database, url: undefined };
    });
    beforeEach(() => emptyTables(subject.database));
    afterAll(() => subject?.database.close());
    body(() => subject);
  });
  describeOnPostgres(title, body);
}

/**
 * Tests of concurrency: only a real server runs two sessions at once (PGlite serves one, so SKIP LOCKED never
 * skips and advisory locks are re-entrant there).
 */
export function describeOnPostgres(title: string, body: (subject: () => DatabaseUnderTest) => void): void {
  describe.runIf(required && unavailable !== undefined)(`${title} (PostgreSQL required)`, () => {
    it('has a PostgreSQL server', () => {
      expect.fail(`STOWAGE_REQUIRE_POSTGRES=1 but PostgreSQL cannot run here: ${unavailable}`);
    });
  });
  describe.skipIf(unavailable !== undefined)(
    `${title} on PostgreSQL${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
    () => {
      let server: TestPostgres;
      let subject: DatabaseUnderTest;
      beforeAll(async () => {
        server = await startPostgres();
        const url = await server.createDatabase(`stowage_${process.pid}_${++databaseCounter}`);
        const database = await openDatabase({ url });
        await migrate(database);
        subject = { kind: 'postgres', database, url };
      });
      beforeEach(() => emptyTables(subject.database));
      afterAll(async () => {
        await subject?.database.close();
        await server?.stop();
      });
      body(() => subject);
    },
  );
}

/** Every table but the migrations' record, whichever migrations made it. */
async function emptyTables(database: ManagerDatabase): Promise<void> {
  const tables = await sql<{ tablename: string }>`
    SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'manager_migration'
  `.execute(database.db);
  const names = tables.rows.map((row) => sql.id(row.tablename));
  if (names.length > 0) await sql`TRUNCATE ${sql.join(names)} CASCADE`.execute(database.db);
}
