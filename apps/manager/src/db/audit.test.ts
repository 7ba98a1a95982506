import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { describeOnDatabases } from '../testing/databases.js';
import {
  countFailedSignIns,
  FOLD_WINDOW_MS,
  listAuditPage,
  type NewAuditEntry,
  pruneAuditLog,
  recordAuditEntry,
} from './audit.js';
import type { Db } from './conn.js';

const T0 = new Date('2026-12-04T12:00:00Z');

/** A refused call of `action` from `remote`, `ms` after T0. */
const refusal = (ms: number, overrides: Partial<Omit<NewAuditEntry, 'id' | 'at'>> = {}): NewAuditEntry => ({
  id: randomUUID(),
  at: new Date(T0.getTime() + ms),
  actor: { kind: 'anonymous', id: null, name: null, role: null },
  action: 'createVolume',
  method: 'POST',
  path: '/v1/volumes',
  resource: {},
  outcome: 'error',
  status: 401,
  errorCode: 'unauthorized',
  remote: '10.0.0.9',
  ...overrides,
});

const all = async (db: Db) => listAuditPage(db, { limit: 500 });

describeOnDatabases('the audit log', (subject) => {
  it('folds a flood of refusals from one address into one row a minute, counting every call', async () => {
    const { db } = subject().database;
    // 120 refusals over 90 s: the first minute's into one row, the rest into a second.
    for (let i = 0; i < 120; i++) await recordAuditEntry(db, refusal(i * 750));
    const rows = await all(db);
    expect(rows.map((r) => r.repeats).sort((a, b) => a - b)).toEqual([40, 80]);
    const first = rows.find((r) => r.repeats === 80)!;
    expect(first.at).toEqual(T0);
    expect(first.last_at).toEqual(new Date(T0.getTime() + 79 * 750));
    const second = rows.find((r) => r.repeats === 40)!;
    expect(second.at).toEqual(new Date(T0.getTime() + 80 * 750));
    expect(second.at.getTime() - first.at.getTime()).toBeGreaterThanOrEqual(FOLD_WINDOW_MS);
  });

  it('keeps apart what differs: address, action, status, actor, and successful calls', async () => {
    const { db } = subject().database;
    const entries = [
      refusal(0),
      refusal(1, { remote: '10.0.0.10' }),
      refusal(2, { remote: null }),
      refusal(3, { action: 'deleteBackup' }),
      refusal(4, { status: 429, errorCode: 'rate_limited', action: 'signIn', actor: anonymousNamed('eve') }),
      refusal(5, {
        status: 429,
        errorCode: 'rate_limited',
        action: 'signIn',
        actor: anonymousNamed('mallory'),
      }),
      refusal(6, { status: 403, errorCode: 'forbidden' }), // a known caller refused: every one is kept
      refusal(7, { outcome: 'ok', status: 201, errorCode: null }),
    ];
    for (const entry of entries) await recordAuditEntry(db, entry);
    for (const entry of entries) await recordAuditEntry(db, { ...entry, id: randomUUID() });
    const rows = await all(db);
    const repeats = new Map(
      rows.map((r) => [`${r.action} ${r.status} ${r.remote} ${r.actor_name}`, r.repeats]),
    );
    // Six kinds of refusal fold into six rows; the 403s and the successes are two rows each.
    expect(rows).toHaveLength(6 + 2 + 2);
    expect(repeats.get('createVolume 401 10.0.0.9 null')).toBe(2);
    expect(repeats.get('createVolume 401 10.0.0.10 null')).toBe(2);
    expect(repeats.get('createVolume 401 null null')).toBe(2);
    expect(repeats.get('deleteBackup 401 10.0.0.9 null')).toBe(2);
    expect(repeats.get('signIn 429 10.0.0.9 eve')).toBe(2);
    expect(repeats.get('signIn 429 10.0.0.9 mallory')).toBe(2);
    expect(rows.filter((r) => r.status === 403).map((r) => r.repeats)).toEqual([1, 1]);
    expect(rows.filter((r) => r.status === 201).map((r) => r.repeats)).toEqual([1, 1]);
  });

  it('never folds wrong passwords: the sign-in limit counts each one', async () => {
    const { db } = subject().database;
    const wrong = (ms: number) =>
      refusal(ms, { action: 'signIn', path: '/v1/session', actor: anonymousNamed('bob') });
    for (let i = 0; i < 12; i++) await recordAuditEntry(db, wrong(i * 1000));
    expect((await all(db)).map((r) => r.repeats)).toEqual(Array(12).fill(1));
    expect(await countFailedSignIns(db, 'bob', '10.0.0.9', new Date(T0.getTime() - 1))).toEqual({
      byName: 12,
      byRemote: 12,
    });
  });

  it('deletes rows older than the cut-off in batches, and nothing newer', async () => {
    const { db } = subject().database;
    for (let i = 0; i < 25; i++) await recordAuditEntry(db, refusal(i * 1000, { status: 403 }));
    const cutoff = new Date(T0.getTime() + 17_500);
    // Batches of 4, two per call: a call deletes 8 and leaves the rest for the next.
    expect(await pruneAuditLog(db, cutoff, { batch: 4, maxBatches: 2 })).toBe(8);
    expect(await pruneAuditLog(db, cutoff, { batch: 4, maxBatches: 2 })).toBe(8);
    expect(await pruneAuditLog(db, cutoff, { batch: 4, maxBatches: 2 })).toBe(2);
    expect(await pruneAuditLog(db, cutoff, { batch: 4, maxBatches: 2 })).toBe(0);
    const left = (await all(db)).map((r) => r.at.getTime() - T0.getTime()).sort((a, b) => a - b);
    expect(left).toEqual([18, 19, 20, 21, 22, 23, 24].map((s) => s * 1000));
  });
});

function anonymousNamed(name: string): NewAuditEntry['actor'] {
  return { kind: 'anonymous', id: null, name, role: null };
}
