import { sql } from 'kysely';
import type { Db } from '../db/conn.js';
import type { GcObjectKind } from '../db/schema-gc.js';
import type { ListedIndexObject, ListedObject } from './bucket.js';

/** Rows per insert and per page read back: bounds the heap whatever the target holds. */
export const GC_BATCH = 1000;

/**
 * One GC run's mark and listings, in Postgres (migration 0002's gc_* tables): what is live, what the bucket
 * holds, which manifests were marked, which index objects name which packs. The doomed objects are what a
 * join of these says, read back in id order a page at a time.
 */
export class GcState {
  constructor(
    private readonly db: Db,
    readonly runId: string,
  ) {}

  async addLive(kind: GcObjectKind, ids: readonly Uint8Array[]): Promise<void> {
    for (let i = 0; i < ids.length; i += GC_BATCH) {
      const rows = ids.slice(i, i + GC_BATCH).map((id) => ({ run_id: this.runId, kind, id }));
      await this.db
        .insertInto('gc_live_object')
        .values(rows)
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
  }

  async isLive(kind: GcObjectKind, id: Uint8Array): Promise<boolean> {
    const row = await this.db
      .selectFrom('gc_live_object')
      .select('kind')
      .where('run_id', '=', this.runId)
      .where('kind', '=', kind)
      .where('id', '=', id)
      .executeTakeFirst();
    return row !== undefined;
  }

  async addListed(kind: GcObjectKind, objects: readonly ListedObject[]): Promise<void> {
    if (objects.length === 0) return;
    await this.db
      .insertInto('gc_listed_object')
      .values(
        objects.map((o) => ({
          run_id: this.runId,
          kind,
          id: o.id,
          size: o.size,
          last_modified: o.lastModified,
        })),
      )
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  /** Records a manifest as marked; false when it already was (by this run's first listing). */
  async addMarkedManifest(volumeId: string, backupId: string): Promise<boolean> {
    const row = await this.db
      .insertInto('gc_marked_manifest')
      .values({ run_id: this.runId, volume_id: volumeId, backup_id: backupId })
      .onConflict((oc) => oc.doNothing())
      .returning('backup_id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Of these manifests, the ones not marked yet. */
  async unmarked(refs: readonly { volumeId: string; backupId: string }[]): Promise<Set<string>> {
    if (refs.length === 0) return new Set();
    const marked = await this.db
      .selectFrom('gc_marked_manifest')
      .select('backup_id')
      .where('run_id', '=', this.runId)
      .where(
        'backup_id',
        'in',
        refs.map((r) => r.backupId),
      )
      .execute();
    const seen = new Set(marked.map((m) => m.backup_id));
    return new Set(refs.filter((r) => !seen.has(r.backupId)).map((r) => r.backupId));
  }

  /** Records index objects; answers the keys that were new (the second listing reads only those). */
  async addIndexObjects(objects: readonly ListedIndexObject[]): Promise<string[]> {
    if (objects.length === 0) return [];
    const rows = await this.db
      .insertInto('gc_index_object')
      .values(
        objects.map((o) => ({
          run_id: this.runId,
          key: o.key,
          volume_id: o.volumeId,
          backup_id: o.backupId,
          size: o.size,
          last_modified: o.lastModified,
        })),
      )
      .onConflict((oc) => oc.doNothing())
      .returning('key')
      .execute();
    return rows.map((r) => r.key);
  }

  async setIndexPacks(key: string, read: { packs: Uint8Array[] } | 'unreadable'): Promise<void> {
    if (read === 'unreadable') {
      await this.db
        .updateTable('gc_index_object')
        .set({ readable: false })
        .where('run_id', '=', this.runId)
        .where('key', '=', key)
        .execute();
      return;
    }
    for (let i = 0; i < read.packs.length; i += GC_BATCH) {
      await this.db
        .insertInto('gc_index_pack')
        .values(read.packs.slice(i, i + GC_BATCH).map((pack_id) => ({ run_id: this.runId, pack_id, key })))
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
  }

  /**
   * Listed objects of `kind` older than the cutoff that nothing live names, in id order, a page after `after`.
   */
  async doomed(kind: GcObjectKind, cutoff: Date, after: Uint8Array | undefined): Promise<ListedObject[]> {
    let query = this.db
      .selectFrom('gc_listed_object as l')
      .select(['l.id', 'l.size', 'l.last_modified'])
      .where('l.run_id', '=', this.runId)
      .where('l.kind', '=', kind)
      .where('l.last_modified', '<', cutoff)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('gc_live_object as v')
              .select(sql`1`.as('one'))
              .whereRef('v.run_id', '=', 'l.run_id')
              .whereRef('v.kind', '=', 'l.kind')
              .whereRef('v.id', '=', 'l.id'),
          ),
        ),
      );
    if (after !== undefined) query = query.where('l.id', '>', after);
    const rows = await query.orderBy('l.id').limit(GC_BATCH).execute();
    return rows.map((r) => ({ id: r.id, size: r.size, lastModified: r.last_modified }));
  }

  /**
   * Index objects to delete, in key order, a page after `after`: those of a backup with no committed
   * manifest (never committed, or deleted) and older than the cutoff, unreadable ones older than the cutoff,
   * and — whatever their age — every one naming a pack this run deletes (rule 2: they go first).
   */
  async doomedIndexObjects(
    cutoff: Date,
    after: string | undefined,
  ): Promise<{ key: string; size: number }[]> {
    const run = this.runId;
    const afterKey = after ?? '';
    const { rows } = await sql<{ key: string; size: number }>`
      SELECT o.key, o.size FROM gc_index_object o
      WHERE o.run_id = ${run} AND o.key COLLATE "C" > ${afterKey} AND (
        (o.last_modified < ${cutoff} AND (NOT o.readable OR NOT EXISTS (
          SELECT 1 FROM gc_marked_manifest m
          WHERE m.run_id = o.run_id AND m.volume_id = o.volume_id AND m.backup_id = o.backup_id)))
        OR EXISTS (
          SELECT 1 FROM gc_index_pack ip
          JOIN gc_listed_object l ON l.run_id = ip.run_id AND l.kind = 'p' AND l.id = ip.pack_id
          WHERE ip.run_id = o.run_id AND ip.key = o.key AND l.last_modified < ${cutoff}
            AND NOT EXISTS (SELECT 1 FROM gc_live_object v
              WHERE v.run_id = l.run_id AND v.kind = 'p' AND v.id = l.id)))
      ORDER BY o.key COLLATE "C" LIMIT ${GC_BATCH}`.execute(this.db);
    return rows.map((r) => ({ key: r.key, size: Number(r.size) }));
  }

  /**
   * Refreshes the planner's statistics of the scratch tables, filled since the last ANALYZE (PGlite runs no
   * autovacuum, and on PostgreSQL it may not come round during a run). Without them the planner takes the
   * tables for empty and joins them by nested loops: at 1,000,000 chunks (125,000 live packs, 2,160 index
   * objects) `liveListed` spilled gc_live_object to a temporary file and rescanned it once per listed pack
   * (hours on PGlite); with them it is a hash join of about 2 s (bench/gc.mjs).
   */
  async analyze(): Promise<void> {
    await sql`ANALYZE gc_live_object, gc_listed_object, gc_marked_manifest, gc_index_object, gc_index_pack`.execute(
      this.db,
    );
  }

  /** How many listed objects of `kind` are live (named by a marked manifest). */
  async liveListed(kind: GcObjectKind): Promise<number> {
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM gc_listed_object l
      WHERE l.run_id = ${this.runId} AND l.kind = ${kind} AND EXISTS (
        SELECT 1 FROM gc_live_object v WHERE v.run_id = l.run_id AND v.kind = l.kind AND v.id = l.id)`.execute(
      this.db,
    );
    return rows[0]?.n ?? 0;
  }

  /** The scratch rows go with the run's end (the run's own row stays, with its counts). */
  async clear(): Promise<void> {
    for (const table of [
      'gc_live_object',
      'gc_listed_object',
      'gc_marked_manifest',
      'gc_index_pack',
      'gc_index_object',
    ] as const) {
      await this.db.deleteFrom(table).where('run_id', '=', this.runId).execute();
    }
  }
}
