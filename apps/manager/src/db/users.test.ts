import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { hashToken } from '../secrets/tokens.js';
import type { ManagerContext } from '../services/context.js';
import { removeUser, updateUser } from '../services/users.js';
import { describeOnDatabases, describeOnPostgres } from '../testing/databases.js';
import { countFailedSignIns, insertAuditEntry } from './audit.js';
import type { Db } from './conn.js';
import { openDatabase } from './database.js';
import { findLiveSession, insertSession, insertUser } from './users.js';

const user = (db: Db, name: string, role: 'admin' | 'viewer' = 'admin') =>
  insertUser(db, { id: randomUUID(), name, role, passwordHash: 'scrypt$2$1$1$AA$AA' });
const context = (db: ManagerContext['db']) =>
  ({ db, logger: silentLogger, now: () => new Date() }) as unknown as ManagerContext;

describeOnDatabases('users and sessions', (subject) => {
  it('finds a session by its cookie hash until it expires, with its user as they are now', async () => {
    const { db } = subject().database;
    const alice = await user(db, 'alice');
    const now = new Date('2026-12-03T12:00:00Z');
    await insertSession(db, {
      id: randomUUID(),
      token_hash: hashToken('cookie-1'),
      user_id: alice.id,
      csrf_token: 'csrf-1',
      created_at: now,
      expires_at: new Date(now.getTime() + 60_000),
      remote: '127.0.0.1',
    });
    const found = await findLiveSession(db, hashToken('cookie-1'), now);
    expect(found?.user).toMatchObject({ id: alice.id, name: 'alice', role: 'admin' });
    expect(found?.session).toMatchObject({ csrf_token: 'csrf-1', user_id: alice.id, remote: '127.0.0.1' });
    expect(await findLiveSession(db, hashToken('cookie-2'), now)).toBeUndefined();
    expect(
      await findLiveSession(db, hashToken('cookie-1'), new Date(now.getTime() + 60_000)),
    ).toBeUndefined();
  });

  it('counts wrong-password sign-ins by name and by address within the window only', async () => {
    const { db } = subject().database;
    const at = new Date('2026-12-03T12:00:00Z');
    const entry = (name: string, remote: string, minutesAgo: number, errorCode: string | null) =>
      insertAuditEntry(db, {
        id: randomUUID(),
        at: new Date(at.getTime() - minutesAgo * 60_000),
        actor: { kind: 'anonymous', id: null, name, role: null },
        action: 'signIn',
        method: 'POST',
        path: '/v1/session',
        resource: {},
        outcome: errorCode === null ? 'ok' : 'error',
        status: errorCode === null ? 200 : errorCode === 'unauthorized' ? 401 : 429,
        errorCode,
        remote,
      });
    await entry('bob', '10.0.0.1', 1, 'unauthorized');
    await entry('bob', '10.0.0.2', 2, 'unauthorized');
    await entry('bob', '10.0.0.1', 3, 'rate_limited'); // the limit's own refusals do not count
    await entry('bob', '10.0.0.1', 4, null); // nor successes
    await entry('bob', '10.0.0.1', 20, 'unauthorized'); // outside the window
    await entry('carol', '10.0.0.1', 5, 'unauthorized');
    const since = new Date(at.getTime() - 15 * 60_000);
    expect(await countFailedSignIns(db, 'bob', '10.0.0.1', since)).toEqual({ byName: 2, byRemote: 2 });
    expect(await countFailedSignIns(db, 'dave', null, since)).toEqual({ byName: 0, byRemote: 0 });
  });
});

describeOnPostgres('the last admin across connections', (subject) => {
  it('lets only one of two concurrent removals of the two admins through', async () => {
    const { database, url } = subject();
    const [a, b] = [await user(database.db, 'a1'), await user(database.db, 'a2')];
    await user(database.db, 'v1', 'viewer');
    const pools = await Promise.all([openDatabase({ url: url! }), openDatabase({ url: url! })]);
    try {
      for (let round = 0; round < 5; round++) {
        const outcomes = await Promise.allSettled([
          removeUser(context(pools[0]!.db), a.id),
          round % 2 === 0
            ? removeUser(context(pools[1]!.db), b.id)
            : updateUser(context(pools[1]!.db), b.id, { role: 'viewer' }),
        ]);
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        const admins = await database.db
          .selectFrom('app_user')
          .select('id')
          .where('role', '=', 'admin')
          .execute();
        expect(admins).toHaveLength(1);
        // Put the pair back for the next round.
        await database.db.deleteFrom('app_user').where('name', 'in', ['a1', 'a2']).execute();
        await insertUser(database.db, { id: a.id, name: 'a1', role: 'admin', passwordHash: 'x' });
        await insertUser(database.db, { id: b.id, name: 'a2', role: 'admin', passwordHash: 'x' });
      }
    } finally {
      await Promise.all(pools.map((p) => p.close()));
    }
  });
});
