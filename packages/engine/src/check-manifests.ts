// Reading every committed manifest for the check, one after the other, handing each segment to the caller.
import { type Manifest, type ManifestSegment, StowageFormatError } from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';
import type { Limiter } from './limiter.js';
import type { BackupRef, Repository } from './repository.js';

/** Manifest roots fetched ahead of the one being read (roots are small; their segments are read in turn). */
const MANIFEST_CONCURRENCY = 4;

/**
 * Reads the manifests of `refs` one after the other — roots fetched a few ahead, segments in order — and hands
 * each to the handlers in turn (calls never overlap, so the caller's index needs no lock): `onManifest` with the
 * root, `onSegment` per segment (a missing or corrupt one as `damaged`), `onManifestDone` once every segment
 * was read and the totals checked. A root that does not decode, or a segment whose records do not (an
 * authentic but invalid manifest), goes to `onDamaged` and into `skip`; a root deleted meanwhile (a prune)
 * into `skip`; a storage failure stops everything.
 */
export async function eachManifest(
  repository: Repository,
  refs: readonly (BackupRef & { size: number })[],
  skip: Set<string>,
  call: OperationOptions,
  cancelled: () => void,
  handlers: {
    onManifest?: (ref: BackupRef & { size: number }, manifest: Manifest) => void | Promise<void>;
    onSegment: (
      ref: BackupRef & { size: number },
      manifest: Manifest,
      segment: ManifestSegment,
    ) => void | Promise<void>;
    onManifestDone?: (ref: BackupRef & { size: number }, manifest: Manifest) => void | Promise<void>;
    onDamaged: (ref: BackupRef, error: StowageFormatError) => void;
  },
): Promise<void> {
  const todo = refs.filter((r) => !skip.has(r.manifestKey));
  const roots: Promise<Manifest>[] = [];
  const load = (i: number) => {
    while (roots.length < Math.min(todo.length, i + MANIFEST_CONCURRENCY)) {
      const ref = todo[roots.length]!;
      const root = repository.loadManifest(ref, call);
      root.catch(() => {}); // awaited in order below
      roots.push(root);
    }
  };
  for (let i = 0; i < todo.length; i++) {
    cancelled();
    load(i);
    const ref = todo[i]!;
    let manifest: Manifest;
    try {
      manifest = await roots[i]!;
      roots[i] = Promise.resolve(manifest);
    } catch (error) {
      if (error instanceof StowageFormatError) {
        skip.add(ref.manifestKey);
        handlers.onDamaged(ref, error);
        continue;
      }
      if (isObjectStoreError(error, 'not-found')) {
        skip.add(ref.manifestKey);
        continue;
      }
      throw error;
    }
    await handlers.onManifest?.(ref, manifest);
    try {
      for await (const segment of repository.readManifestSegments(manifest, {
        ...call,
        tolerateDamage: true,
      })) {
        cancelled();
        await handlers.onSegment(ref, manifest, segment);
      }
    } catch (error) {
      if (!(error instanceof StowageFormatError)) throw error;
      skip.add(ref.manifestKey);
      handlers.onDamaged(ref, error);
      continue;
    }
    await handlers.onManifestDone?.(ref, manifest);
  }
}

/** Runs `task` for each item with at most `limiter.limit` at once; the first failure stops new ones. */
export async function runBounded<T>(
  items: Iterable<T>,
  limiter: Limiter,
  cancelled: () => void,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let failure: unknown;
  const inFlight = new Set<Promise<void>>();
  for (const item of items) {
    try {
      cancelled();
    } catch (error) {
      failure ??= error;
    }
    if (failure !== undefined) break;
    await limiter.acquire();
    const run = task(item)
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => limiter.release());
    inFlight.add(run);
    void run.finally(() => inFlight.delete(run));
  }
  await Promise.allSettled(inFlight);
  if (failure !== undefined) throw failure;
}
