import { ApiError, type ApiErrorBody } from '@stowage/api';
import { type BackupRef, Limiter, type Repository } from '@stowage/engine';
import { parseDamageRecordObjectKey } from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { COMMIT_MARGIN_MS, COMMIT_VALID_MS, holdingLeases } from '../db/leases.js';
import type { GcRunPhase, GcRunRow } from '../db/schema-gc.js';
import { getTarget } from '../db/targets.js';
import { dispatchQueuedBackups } from '../services/backups.js';
import type { ManagerContext } from '../services/context.js';
import { openTargetRepository } from '../targets/targets.js';
import {
  indexObjectPacks,
  type ListedIndexObject,
  type ListedObject,
  listIndexObjects,
  listPacks,
  listSegments,
  markManifest,
  packKey,
  segmentKey,
  UnmarkableManifestError,
} from './bucket.js';
import { GC_BATCH, GcState } from './state.js';

/** How often the running replica writes its heartbeat; a run silent for GC_STALE_MS is failed by another. */
export const GC_HEARTBEAT_MS = 5_000;
export const GC_STALE_MS = 120_000;
/** Longest one delete request may take: well inside GC_STALE_MS, so a fenced-out sweep stops in time. */
const DELETE_TIMEOUT_MS = 30_000;
/** Manifests and index objects read at once (each a GET or a few: latency, not bandwidth, is the cost). */
const READ_CONCURRENCY = 4;
/** Segments read at once by the mark (each up to 10 MiB in memory): bench/gc.mjs's peak RSS is in the mark. */
const SEGMENT_READS = 2;
const DAMAGE_PREFIX = 'damage/';

export interface GcRunOptions {
  /** Longest wait for running backups before the sweep gives up, deleting nothing (default 1 h). */
  readonly maxWaitMs?: number;
  /** Poll interval of that wait (default 1 s). */
  readonly pollMs?: number;
  /** Ends the run (its manager is stopping): it fails, deleting nothing more. */
  readonly signal?: AbortSignal;
  /** Called between phases (tests use it to interleave work with a run). */
  readonly onPhase?: (phase: GcRunPhase) => Promise<void> | void;
}

type Counts = Pick<
  GcRunRow,
  | 'manifests'
  | 'packs_listed'
  | 'packs_live'
  | 'packs_deleted'
  | 'segments_listed'
  | 'segments_live'
  | 'segments_deleted'
  | 'index_objects_listed'
  | 'index_objects_deleted'
  | 'bytes_listed'
  | 'bytes_freed'
>;

/** Thrown when another replica failed this run (its heartbeat stopped reaching the database). */
class FencedOut extends Error {}

/**
 * One GC run of a target (docs/operations.md#gc), from its `running` row to its end:
 * 1. **mark** (concurrent with backups): every committed manifest's segments and packs into the live set;
 * 2. **list**: packs, segments and index objects into the run's tables, and the packs each index object names;
 * 3. **wait**: the target is taken (new backups wait queued), then every lease must end;
 * 4. **remark**: manifests committed and index objects written since, now that nothing can commit;
 * 5. **sweep**: index objects of uncommitted backups and those naming a doomed pack, then the doomed packs,
 *    then dead segments — each older than the cutoff and named by no marked manifest.
 * A dry run stops after a remark without the wait and counts what the sweep would delete. Any failure ends
 * the run `failed` with its cause; the target is always let go and its waiting backups sent.
 */
export async function executeGcRun(
  ctx: ManagerContext,
  runId: string,
  options: GcRunOptions = {},
): Promise<void> {
  const run = await ctx.db.selectFrom('backup_gc_run').selectAll().where('id', '=', runId).executeTakeFirst();
  if (run?.state !== 'running') return;
  const target = await getTarget(ctx.db, run.backup_target_id);
  const log = { gc_run_id: run.id, target_id: run.backup_target_id, dry_run: run.dry_run };
  const state = new GcState(ctx.db, run.id);
  const counts: Counts = {
    manifests: 0,
    packs_listed: 0,
    packs_live: 0,
    packs_deleted: 0,
    segments_listed: 0,
    segments_live: 0,
    segments_deleted: 0,
    index_objects_listed: 0,
    index_objects_deleted: 0,
    bytes_listed: 0,
    bytes_freed: 0,
  };
  const abort = new AbortController();
  const call: OperationOptions = { signal: abort.signal };
  const stopping = () => abort.abort(options.signal?.reason);
  if (options.signal?.aborted) stopping();
  options.signal?.addEventListener('abort', stopping, { once: true });
  let fencedOut = false;
  /** Writes the heartbeat and the counts; false when the run is no longer ours to run. */
  const beat = async (phase?: GcRunPhase): Promise<boolean> => {
    const row = await ctx.db
      .updateTable('backup_gc_run')
      .set({ heartbeat_at: ctx.now(), ...counts, ...(phase ? { phase } : {}) })
      .where('id', '=', run.id)
      .where('state', '=', 'running')
      .returning('id')
      .executeTakeFirst();
    if (!row) {
      fencedOut = true;
      abort.abort(new FencedOut(`GC run ${run.id} was ended by another manager`));
    }
    return row !== undefined;
  };
  const heartbeat = setInterval(() => {
    beat().catch((error: unknown) => ctx.logger.warn('GC heartbeat failed', { ...log, error }));
  }, GC_HEARTBEAT_MS);
  const phase = async (name: GcRunPhase) => {
    abort.signal.throwIfAborted();
    if (!(await beat(name))) throw new FencedOut(`GC run ${run.id} was ended by another manager`);
    ctx.logger.info('GC phase', { ...log, phase: name });
    await options.onPhase?.(name);
  };
  let took = false;
  let failure: ApiErrorBody | undefined;
  let opened: { repository: Repository; close: () => void } | undefined;
  try {
    if (!target) throw new ApiError('not_found', `target ${run.backup_target_id} is gone`);
    opened = await openTargetRepository(ctx, target);
    const { repository } = opened;
    const segmentReads = new Limiter(SEGMENT_READS);
    const mark = async (ref: BackupRef) => {
      if (!(await state.addMarkedManifest(ref.volumeId, ref.backupId))) return;
      for await (const segment of markManifest(repository, ref, call, {
        marked: (id) => state.isLive('s', id),
        segmentReads,
      })) {
        // Its packs before the segment itself: a manifest that skips a marked segment relies on them.
        await state.addLive('p', segment.packs);
        await state.addLive('s', [segment.segmentId]);
      }
      counts.manifests++;
    };
    const readIndex = async (object: ListedIndexObject) => {
      const read = await indexObjectPacks(repository, object.key, call);
      if (read !== 'gone') await state.setIndexPacks(object.key, read);
    };
    const listIndex = async () => {
      let batch: ListedIndexObject[] = [];
      const flush = async () => {
        const fresh = new Set(await state.addIndexObjects(batch));
        const news = batch.filter((o) => fresh.has(o.key));
        counts.index_objects_listed += news.length;
        for (const o of news) counts.bytes_listed += o.size;
        await forEachConcurrent(news, READ_CONCURRENCY, readIndex);
        batch = [];
      };
      for await (const object of listIndexObjects(repository, call)) {
        batch.push(object);
        if (batch.length >= GC_BATCH) await flush();
      }
      await flush();
    };
    const remark = async () => {
      let refs: BackupRef[] = [];
      const flush = async () => {
        const unmarked = await state.unmarked(refs);
        await forEachConcurrent(
          refs.filter((r) => unmarked.has(r.backupId)),
          READ_CONCURRENCY,
          mark,
        );
        refs = [];
      };
      for await (const ref of repository.backupRefs(call)) {
        refs.push(ref);
        if (refs.length >= GC_BATCH) await flush();
      }
      await flush();
    };

    await phase('mark');
    await forEachConcurrent(repository.backupRefs(call), READ_CONCURRENCY, mark);

    await phase('list');
    await listInto(state, 'p', listPacks(repository, call), (n, bytes) => {
      counts.packs_listed += n;
      counts.bytes_listed += bytes;
    });
    await listInto(state, 's', listSegments(repository, call), (n, bytes) => {
      counts.segments_listed += n;
      counts.bytes_listed += bytes;
    });
    await listIndex();

    if (!run.dry_run) {
      await phase('wait');
      await waitOutEndedHolds(ctx, run.backup_target_id, options, beat);
      took = await takeTarget(ctx, run.backup_target_id, run.id);
      if (!took)
        throw new ApiError('conflict', `target ${run.backup_target_id} is being swept by another run`);
      await waitForLeases(ctx, run.backup_target_id, options, beat);
    }
    // Nothing commits from here on (every lease has ended, new backups wait): what the bucket holds now is all.
    await phase('remark');
    await remark();
    await listIndex();
    await state.analyze();
    counts.packs_live = await state.liveListed('p');
    counts.segments_live = await state.liveListed('s');

    await phase('sweep');
    /** Deletes one page (a dry run only counts it), fenced: only while this run is still ours. */
    const sweep = async (keys: string[], bytes: number) => {
      if (!run.dry_run) {
        if (!(await beat())) throw new FencedOut(`GC run ${run.id} was ended by another manager`);
        await repository.store.deleteMany(keys, {
          signal: AbortSignal.any([abort.signal, AbortSignal.timeout(DELETE_TIMEOUT_MS)]),
        });
      }
      counts.bytes_freed += bytes;
    };
    // Damage records of backups whose manifest is gone (format §12.3: they may go once that is confirmed —
    // the remark's listing, final now, is the confirmation). A dry run leaves them.
    if (!run.dry_run) {
      const orphans = await orphanedDamageRecords(repository, state, run.cutoff, call);
      for (let i = 0; i < orphans.length; i += GC_BATCH) await sweep(orphans.slice(i, i + GC_BATCH), 0);
      if (orphans.length > 0)
        ctx.logger.info('GC deleted damage records of deleted backups', { ...log, records: orphans.length });
    }
    // Rule 2 of format §5.5: the index objects naming a doomed pack go before it (a dry run counts them).
    let afterKey: string | undefined;
    for (;;) {
      const page = await state.doomedIndexObjects(run.cutoff, afterKey);
      if (page.length === 0) break;
      await sweep(
        page.map((o) => o.key),
        page.reduce((sum, o) => sum + o.size, 0),
      );
      counts.index_objects_deleted += page.length;
      afterKey = page.at(-1)!.key;
    }
    for (const kind of ['p', 's'] as const) {
      let afterId: Uint8Array | undefined;
      for (;;) {
        const page = await state.doomed(kind, run.cutoff, afterId);
        if (page.length === 0) break;
        const keys = page.map((o) => (kind === 'p' ? packKey(o.id) : segmentKey(o.id)));
        await sweep(
          keys,
          page.reduce((sum, o) => sum + o.size, 0),
        );
        if (kind === 'p') counts.packs_deleted += page.length;
        else counts.segments_deleted += page.length;
        afterId = page.at(-1)!.id;
      }
    }
  } catch (error) {
    failure = gcFailure(error, fencedOut);
    ctx.logger[fencedOut ? 'warn' : 'error']('GC run failed', { ...log, error });
  } finally {
    options.signal?.removeEventListener('abort', stopping);
    clearInterval(heartbeat);
    opened?.close();
    if (took) await releaseTarget(ctx, run.backup_target_id, run.id);
    await state.clear().catch((error: unknown) => ctx.logger.warn('GC scratch rows left', { ...log, error }));
  }
  const finishedAt = ctx.now();
  await ctx.db
    .updateTable('backup_gc_run')
    .set({
      ...counts,
      state: failure ? 'failed' : 'succeeded',
      phase: 'done',
      finished_at: finishedAt,
      heartbeat_at: finishedAt,
      error: failure ? JSON.stringify(failure) : null,
    })
    .where('id', '=', run.id)
    .where('state', '=', 'running')
    .execute();
  if (!failure) ctx.logger.info('GC run finished', { ...log, ...counts });
  if (took) {
    await dispatchQueuedBackups(ctx, run.backup_target_id).catch((error: unknown) =>
      ctx.logger.error('sending the backups that waited for the sweep failed', { ...log, error }),
    );
  }
}

/** Damage records older than the cutoff whose backup no listing of this run found committed. */
async function orphanedDamageRecords(
  repository: Repository,
  state: GcState,
  cutoff: Date,
  call: OperationOptions,
): Promise<string[]> {
  const orphans: string[] = [];
  let batch: { key: string; volumeId: string; backupId: string }[] = [];
  const flush = async () => {
    const unmarked = await state.unmarked(batch);
    for (const record of batch) if (unmarked.has(record.backupId)) orphans.push(record.key);
    batch = [];
  };
  for await (const info of repository.store.list(DAMAGE_PREFIX, call)) {
    const parsed = parseDamageRecordObjectKey(info.key);
    if (!parsed || info.lastModified >= cutoff) continue;
    batch.push({ key: info.key, ...parsed });
    if (batch.length >= GC_BATCH) await flush();
  }
  await flush();
  return orphans;
}

function gcFailure(error: unknown, fencedOut: boolean): ApiErrorBody {
  if (fencedOut) {
    return { code: 'unavailable', message: 'another manager ended this run: its heartbeat stopped' };
  }
  if (error instanceof UnmarkableManifestError) {
    // docs/format.md §5.5 rule 4: what that manifest names is unknown, so nothing may be deleted.
    return {
      code: 'internal',
      message: `${error.message}; nothing was deleted`,
      details: { reason: 'unmarkable' },
    };
  }
  if (error instanceof ApiError) return { code: error.code, message: error.message };
  if (isObjectStoreError(error)) {
    return { code: 'unavailable', message: `the target's storage failed: ${error.message}` };
  }
  return { code: 'internal', message: error instanceof Error ? error.message : String(error) };
}

async function listInto(
  state: GcState,
  kind: 'p' | 's',
  objects: AsyncIterable<ListedObject>,
  counted: (n: number, bytes: number) => void,
): Promise<void> {
  let batch: ListedObject[] = [];
  const flush = async () => {
    await state.addListed(kind, batch);
    counted(
      batch.length,
      batch.reduce((sum, o) => sum + o.size, 0),
    );
    batch = [];
  };
  for await (const object of objects) {
    batch.push(object);
    if (batch.length >= GC_BATCH) await flush();
  }
  await flush();
}

/**
 * Marks the target as swept. The UPDATE waits for any backup start holding the row FOR SHARE (acquireLease),
 * so afterwards every lease there will be is in the table, and no new one is granted until the mark goes.
 */
async function takeTarget(ctx: ManagerContext, targetId: string, runId: string): Promise<boolean> {
  const row = await ctx.db
    .updateTable('backup_target')
    .set({ gc_sweeping_run: runId })
    .where('id', '=', targetId)
    .where((eb) => eb.or([eb('gc_sweeping_run', 'is', null), eb('gc_sweeping_run', '=', runId)]))
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

export async function releaseTarget(ctx: ManagerContext, targetId: string, runId: string): Promise<void> {
  await ctx.db
    .updateTable('backup_target')
    .set({ gc_sweeping_run: null })
    .where('id', '=', targetId)
    .where('gc_sweeping_run', '=', runId)
    .execute();
}

/**
 * Before the target is taken: waits until the jobs that ended holding a granted commit (a root that may still
 * land, leases.ts) no longer hold it, at most COMMIT_VALID_MS + COMMIT_MARGIN_MS (3 min) of real time. The
 * wait after taking covers them too; waiting first keeps new backups running rather than queued behind a
 * hold that no backup can shorten. Holds that begin meanwhile are left to that wait, and so is what a skewed
 * clock makes last longer than the bound: this wait only ever shortens the queueing, never the safety.
 */
async function waitOutEndedHolds(
  ctx: ManagerContext,
  targetId: string,
  options: GcRunOptions,
  beat: () => Promise<boolean>,
): Promise<void> {
  const ended = (leases: readonly { job_id: string; released_at: Date | null }[]) =>
    leases.filter((l) => l.released_at !== null).map((l) => l.job_id);
  const waiting = new Set(ended(await holdingLeases(ctx.db, targetId, ctx.now())));
  const until = Date.now() + Math.min(COMMIT_VALID_MS + COMMIT_MARGIN_MS, options.maxWaitMs ?? 3_600_000);
  while (waiting.size > 0 && Date.now() < until) {
    if (!(await beat())) throw new FencedOut('ended by another manager');
    options.signal?.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
    const still = new Set(ended(await holdingLeases(ctx.db, targetId, ctx.now())));
    for (const id of waiting) if (!still.has(id)) waiting.delete(id);
  }
}

async function waitForLeases(
  ctx: ManagerContext,
  targetId: string,
  options: GcRunOptions,
  beat: () => Promise<boolean>,
): Promise<void> {
  const maxWaitMs = options.maxWaitMs ?? 3_600_000;
  const started = Date.now();
  for (;;) {
    const holding = await holdingLeases(ctx.db, targetId, ctx.now());
    if (holding.length === 0) return;
    if (Date.now() - started >= maxWaitMs) {
      throw new ApiError(
        'conflict',
        `${holding.length} backup(s) of the target still running after ${Math.round(maxWaitMs / 60_000)} min ` +
          `(job ${holding[0]!.job_id} first): the sweep gave up and deleted nothing`,
        { job_ids: holding.map((l) => l.job_id) },
      );
    }
    if (!(await beat())) throw new FencedOut('ended by another manager');
    options.signal?.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
  }
}

/** Runs `fn` over `items` with at most `limit` at once; the first failure stops the rest and is thrown. */
async function forEachConcurrent<T>(
  items: AsyncIterable<T> | Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const iterator =
    Symbol.asyncIterator in items
      ? (items as AsyncIterable<T>)[Symbol.asyncIterator]()
      : (items as Iterable<T>)[Symbol.iterator]();
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (!failed) {
      const next = await iterator.next();
      if (next.done) return;
      try {
        await fn(next.value);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  if (failed) throw failed.error;
}
